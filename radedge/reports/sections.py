"""Section extraction: the FINDINGS and IMPRESSION parts of a radiology report.

Labelers read only what the radiologist saw and concluded. The indication ("rule out pneumonia") and
the history name findings that the image may not show, so reading them costs precision. A report
with no recognisable FINDINGS / IMPRESSION header is read whole: free text without headers is
usually all findings.
"""
from __future__ import annotations

import re
from bisect import bisect_right
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
    """One section of a report: its header as written ('' before the first header) and its body,
    which is `text[start:end]` of the report it came from (so offsets survive extraction);
    the header itself starts at `head` (== start for the unheaded lead section)."""

    header: str
    body: str
    start: int
    end: int
    head: int

    @property
    def is_context(self) -> bool:
        """True for sections that give context, not findings (indication, history, comparison, ...)."""
        return bool(_OTHER_RE.match(self.header))

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


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    """`start, end` moved inwards past white space, so text[start:end] == text[start:end].strip()."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sections(text: str) -> list[Section]:
    """All sections of `text` in order; text before the first header is a section with header ''."""
    sections: list[Section] = []
    header, head, pos = "", 0, 0
    for match in _HEADER_RE.finditer(text):
        if not _is_header(match):
            continue
        start, end = _stripped(text, pos, match.start())
        if header or end > start:
            sections.append(Section(header, text[start:end], start, end, head if header else start))
        name = match.group("named") or match.group("alone") or match.group("caps")
        header, pos = _normalise(name), match.end()
        head = match.start("named" if match.group("named") else "alone" if match.group("alone") else "caps")
    start, end = _stripped(text, pos, len(text))
    if header or end > start:
        sections.append(Section(header, text[start:end], start, end, head if header else start))
    return sections


SEPARATOR = "\n\n"  # between two sections of the read text


@dataclass(frozen=True)
class ReadText:
    """The text the labelers read (`text`) and where each part of it lies in the report.

    `text` is `SEPARATOR.join(report[s:e] for s, e in spans)`: the kept sections, verbatim, in
    report order. `to_report` turns offsets into `text` back into offsets into the report string
    as it was read (after decoding; CRLF and non-ASCII characters are left as they were), which is
    what evidence spans and token offsets must point into.
    """

    text: str
    spans: tuple[tuple[int, int], ...]

    @property
    def starts(self) -> tuple[int, ...]:
        """Offset in `text` where each span's part begins."""
        out, pos = [], 0
        for start, end in self.spans:
            out.append(pos)
            pos += end - start + len(SEPARATOR)
        return tuple(out)

    def to_report(self, start: int, end: int) -> list[tuple[int, int]]:
        """Report offsets of `text[start:end]`: one `(start, end)` per kept section the range
        touches (a range inside one section gives one span, and then
        `report[s:e] == text[start:end]`); separators are dropped, an empty range gives []."""
        if not self.spans or end <= start:
            return []
        starts = self.starts
        first = max(0, bisect_right(starts, start) - 1)
        out = []
        for k in range(first, len(self.spans)):
            lo = starts[k]
            span_start, span_end = self.spans[k]
            hi = lo + span_end - span_start
            if lo >= end:
                break
            s, e = max(start, lo), min(end, hi)
            if e > s:
                out.append((span_start + s - lo, span_start + e - lo))
        return out


def read_text(text: str) -> ReadText:
    """The part of a report the labelers and the distilled student read, with its report offsets.

    The FINDINGS / IMPRESSION-like sections joined by a blank line, in report order, with any
    ALL-CAPS sub-sections right after them (header included: "LINES/TUBES: None."). When the report
    has no such header: the whole text, except sections under a known context header (indication,
    history, comparison, ...) when the report has such headers. Empty or blank text gives ''.
    """
    if not text or not text.strip():
        return ReadText("", ())
    sections = split_sections(text)
    if any(s.is_findings for s in sections):
        # FINDINGS / IMPRESSION, and the sub-headed parts inside them: an ALL-CAPS header we do not
        # know ("LINES AND TUBES:", "LUNGS:") right after a findings section is a sub-header of it,
        # read together with its header text ("SUPPORT DEVICES: None." says what it negates).
        spans, inside = [], False
        for s in sections:
            if s.is_findings:
                inside = True
                if s.body:
                    spans.append((s.start, s.end))
            elif inside and s.header and not s.is_context:
                spans.append((s.head, s.end))
            else:
                inside = False
    elif all(s.header == "" for s in sections):
        spans = [(s.start, s.end) for s in sections]  # one unheaded section: the whole text, stripped
    else:
        # Headers, but none of ours: keep the unheaded lead text and sections we do not know, drop context.
        spans = [(s.start, s.end) for s in sections if s.body and not s.is_context]
    return ReadText(SEPARATOR.join(text[a:b] for a, b in spans), tuple(spans))


SECTION_CHOICES = ("findings,impression", "impression", "all")
_IMPRESSION_RE = re.compile(r"(?:%s)\Z" % "|".join(_TARGET_NAMES[i] for i in (0, 2, 3, 5, 6, 7)), re.IGNORECASE)


def select_text(text: str, sections: str = "findings,impression") -> ReadText:
    """The part of a report read under `--sections`: "findings,impression" is `read_text`;
    "impression" reads only IMPRESSION / CONCLUSION-like sections, as the CheXpert labeler and
    CheXbert are run on impressions (a report without one is read as "findings,impression");
    "all" reads the whole text, indication and history included."""
    if sections == "all":
        start, end = _stripped(text, 0, len(text))
        return ReadText(text[start:end], ((start, end),) if end > start else ())
    if sections == "impression":
        spans = [(s.start, s.end) for s in split_sections(text or "")
                 if s.body and _IMPRESSION_RE.match(_normalise(s.header))]
        if spans:
            return ReadText(SEPARATOR.join(text[a:b] for a, b in spans), tuple(spans))
    elif sections != "findings,impression":
        raise ValueError(f"unknown sections {sections!r}; choose one of {', '.join(SECTION_CHOICES)}")
    return read_text(text)


def findings_text(text: str) -> str:
    """`read_text(text).text`: what the labelers read (see `read_text`)."""
    return read_text(text).text
