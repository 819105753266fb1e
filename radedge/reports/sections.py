"""Section extraction: the FINDINGS and IMPRESSION parts of a radiology report.

Labelers read only what the radiologist saw and concluded. The indication ("rule out pneumonia") and
the history name findings that the image may not show, so reading them costs precision. A report
with no recognisable FINDINGS / IMPRESSION header is read whole: free text without headers is
usually all findings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Header names whose sections the labelers read (case-insensitive; common misspellings from NegBio's
# section_titles.txt included). Longer names first so "findings and impression" wins over "findings".
_TARGET_NAMES = (
    r"findings?\s*(?:\s(?:and|&)\s|/)\s*(?:impressions?|imrpession|conclusions?)",
    r"technique\s+and\s+findings",
    r"(?:corrected\s+|addendum\s+)?impressions?",
    r"impress?on|impressoin|iimpression|fimpression",
    r"findings?|findgings|findigns|findindgs|findins|findngs|findnings|findoings",
    r"conclusions?",
    r"opinion",
    r"summary",
)
# Sections that give context, not findings: they end a target section and are never read.
_OTHER_NAMES = (
    r"comparisons?",
    r"indications?",
    r"clinical\s+(?:history|indications?|information|data|notes?)",
    r"(?:medical\s+)?history",
    r"reason\s+for\s+(?:the\s+)?(?:this\s+)?(?:exam|examination|study|request)",
    r"medical\s+condition",
    r"technique",
    r"examination|exam|study|procedure|type\s+of\s+examination",
    r"views?",
    r"recommendations?",
    r"notification|wet\s+read|final\s+report|addendum",
)

_TARGET_RE = re.compile(r"(?:%s)\Z" % "|".join(_TARGET_NAMES), re.IGNORECASE)
_OTHER_RE = re.compile(r"(?:%s)\Z" % "|".join(_OTHER_NAMES), re.IGNORECASE)
_ANY_NAME = "|".join(_TARGET_NAMES + _OTHER_NAMES)

# A header is a known name followed by a colon, at the start of a line or after a sentence end
# ("... normal. IMPRESSION: ..."), or a known name alone on its own line (no colon), or any
# ALL-CAPS words followed by a colon at the start of a line ("PA AND LATERAL VIEWS:").
_HEADER_RE = re.compile(
    r"(?:^|(?<=[.;!?])|(?<=\n))[ \t]*"
    r"(?:"
    r"(?P<named>%s)[ \t]*:"
    r"|(?P<alone>%s)[ \t]*(?=\n|\Z)"
    r"|(?P<caps>(?!XXXX)[A-Z][A-Z0-9 /&(),-]{1,60}?)[ \t]*:(?!\d)"
    r")" % (_ANY_NAME, _ANY_NAME),
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Section:
    """One section of a report: its header as written ('' before the first header) and its body."""

    header: str
    body: str

    @property
    def is_findings(self) -> bool:
        """True for FINDINGS / IMPRESSION-like sections (what the labelers read)."""
        return bool(_TARGET_RE.match(_normalise(self.header)))


def _normalise(header: str) -> str:
    return re.sub(r"\s+", " ", header.strip().rstrip(":").strip())


def _is_header(match: re.Match[str]) -> bool:
    caps = match.group("caps")
    # The caps alternative is matched case-insensitively by the shared flags: keep it only when the
    # text really is upper case and starts a line, so "Heart size: normal" is not a header.
    if caps is None:
        return True
    if not caps.isupper():
        return False
    i = match.start("caps") - 1
    while i >= 0 and match.string[i] in " \t":
        i -= 1
    return i < 0 or match.string[i] == "\n"  # at the start of a line


def split_sections(text: str) -> list[Section]:
    """All sections of `text` in order; text before the first header is a section with header ''."""
    sections: list[Section] = []
    header, pos = "", 0
    for match in _HEADER_RE.finditer(text):
        if not _is_header(match):
            continue
        body = text[pos:match.start()].strip()
        if header or body:
            sections.append(Section(header, body))
        name = match.group("named") or match.group("alone") or match.group("caps")
        header, pos = _normalise(name), match.end()
    body = text[pos:].strip()
    if header or body:
        sections.append(Section(header, body))
    return sections


def findings_text(text: str) -> str:
    """The text the labelers and the distilled student read.

    The FINDINGS / IMPRESSION-like sections joined by a blank line, in report order. When the report
    has no such header: the whole text, except sections under a known context header (indication,
    history, comparison, ...) when the report has such headers. Empty or blank text gives ''.
    """
    if not text or not text.strip():
        return ""
    sections = split_sections(text)
    targets = [s for s in sections if s.is_findings]
    if targets:
        return "\n\n".join(s.body for s in targets if s.body)
    if all(s.header == "" for s in sections):
        return text.strip()
    # Headers, but none of ours: keep the unheaded lead text and sections we do not know, drop context.
    kept = [s.body for s in sections if s.body and not _OTHER_RE.match(s.header)]
    return "\n\n".join(kept)
