"""The rule labeler: CheXpert-style mention phrases and negation / uncertainty cues, no model.

How a report is labeled (the lexicon files say *what* is matched; this module says *how*):

1. The text is lower-cased, whitespace is collapsed and it is split into sentences once.
2. Each finding has one precompiled alternation of its mention phrases (a phrase matches at a word
   start; stems such as ``atelecta`` match any continuation). A match that overlaps one of the
   finding's unmention phrases is dropped ("pleural scar" is not a Lung Opacity "scar").
3. Each mention is classified inside its *clause*: its sentence, cut at the nearest scope breakers
   ("but", "however", "which", ";", ...). Cues come in three groups, tried in CheXpert's order:
   pre-negation uncertainty ("cannot exclude X") -> uncertain; negation ("no X", "X has resolved")
   -> negative; uncertainty ("possible X", "X or Y") -> uncertain; no cue -> positive. A cue is
   ``pre`` (before the mention, anywhere in the clause or within N words) or ``post`` (after it,
   within N words), and may apply only to mentions whose text matches a filter.
4. Mentions of one finding are combined with CheXpert's precedence: positive > uncertain >
   negative > not mentioned.
5. No Finding comes from `labels.apply_no_finding`; a positive or uncertain mention of the
   "other abnormality" list (chexpert-labeler ``no_finding.txt``) also blocks it.

Everything compiled lives in immutable attributes built at load time, so one labeler may be used
from several threads at once.
"""
from __future__ import annotations

import os
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ModelError
from ..labels import (
    BLANK,
    FINDING_INDEX,
    FINDINGS,
    N_FINDINGS,
    NEGATIVE,
    NO_FINDING,
    POSITIVE,
    UNCERTAIN,
    apply_no_finding,
)

# Lexicon file stems -> finding index; "no_finding" is the list of *other* abnormalities.
OTHER = N_FINDINGS  # extra row index for the "other abnormality" list
_FILE_TO_INDEX = {name.lower().replace(" ", "_"): i for i, name in enumerate(FINDINGS) if i != NO_FINDING}
_FILE_TO_INDEX["no_finding"] = OTHER

# CheXpert: a positive or uncertain heart-failure mention (an Edema phrase) adds an uncertain
# Cardiomegaly mention.
_HEART_FAILURE_RE = re.compile(r"heart failure|chf")
_EDEMA = FINDING_INDEX["Edema"]
_CARDIOMEGALY = FINDING_INDEX["Cardiomegaly"]

_CUE_GROUPS = ("pre_negation_uncertainty", "negation", "uncertainty")
_GROUP_CLASS = {"pre_negation_uncertainty": UNCERTAIN, "negation": NEGATIVE, "uncertainty": UNCERTAIN}
_KIND_RE = re.compile(r"(pre|post)(\d*)\Z")
_DEFAULT_POST_WINDOW = 3  # words allowed between a mention and a `post` cue
# A clause never reaches further than this many characters from its mention (about 40 words): longer
# scopes mean nothing in a report, and the cap keeps a report without full stops linear in time.
_MAX_SCOPE = 300
_WORD = r"[a-z0-9/'-]+"
_GAP = r"[^a-z0-9/'-]+"
_BOUNDARY_L = r"(?<![a-z0-9])"
_BOUNDARY_R = r"(?![a-z0-9])"

_PRIORITY = np.zeros(4, dtype=np.int8)
_PRIORITY[[BLANK, NEGATIVE, UNCERTAIN, POSITIVE]] = [0, 1, 2, 3]  # CheXpert precedence

# A blank line, or a line break before a capital / digit / bullet, ends a sentence; any other line
# break is a wrapped line (MIMIC-style reports wrap mid-sentence) and becomes a space.
_SPACES_RE = re.compile(r"\s+")
_NEW_SENTENCE_RE = re.compile(r"[A-Z0-9*\u2022-]")
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)|\n")


def _read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a lexicon file (the line's text, right-stripped)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read lexicon file {path}: {exc}") from exc
    lines = []
    for line in raw.splitlines():
        line = line.rstrip("\r\n").rstrip()
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


_ESCAPED_OR_UPPER_RE = re.compile(r"\\.|[A-Z]")


def _lower(regex: str) -> str:
    """A lexicon regex in lower case, as the text it is matched against; backslash escapes (an upper-
    case class such as S or W after a backslash) are left alone."""
    return _ESCAPED_OR_UPPER_RE.sub(lambda m: m.group() if m.group().startswith("\\") else m.group().lower(), regex)


def _phrase(text: str) -> str:
    """A lexicon phrase as a regex. CheXpert's underscore is a space, used as a crude word boundary:
    inside a phrase it stays a space; at either end it becomes a real word boundary (every phrase
    already starts at a word start), so "_mediastinum" finds "and mediastinum" and "_line_" finds
    "picc line tip" but not "lines"."""
    text = _lower(text.strip())
    end = "(?![a-z0-9])" if text.endswith("_") else ""
    return text.strip("_").replace("_", " ") + end


def _alternation(phrases: Iterable[str]) -> str:
    unique = sorted(set(phrases), key=lambda p: (-len(p), p))  # longest first wins at one position
    return "|".join(f"(?:{p})" for p in unique)


@dataclass(frozen=True)
class _Cue:
    """One compiled cue group: class it gives, direction, and the mention filter (or None)."""

    cls: int
    pre: bool
    regex: re.Pattern[str]
    mention_filter: re.Pattern[str] | None


@dataclass(frozen=True)
class _Finding:
    index: int
    mention: re.Pattern[str]  # named groups: p (plain), u (uncertain by default), q (needs a qualifier)
    unmention: re.Pattern[str] | None
    qualifier: re.Pattern[str] | None


class _Lexicon:
    """Phrases and cues read from one or more lexicon source folders (see lexicons/README.md)."""

    def __init__(self) -> None:
        self.mention: dict[int, list[str]] = {}
        self.unmention: dict[int, list[str]] = {}
        self.uncertain_mention: dict[int, list[str]] = {}
        self.qualified: dict[int, list[str]] = {}
        self.qualifier: dict[int, list[str]] = {}
        self.cues: dict[str, list[tuple[str, str, str | None]]] = {g: [] for g in _CUE_GROUPS}
        self.breakers: list[str] = []

    def add_source(self, folder: Path) -> None:
        phrase_dirs = {
            "mention": self.mention,
            "unmention": self.unmention,
            "uncertain_mention": self.uncertain_mention,
            "qualified_mention": self.qualified,
            "qualifier": self.qualifier,
        }
        for sub, target in phrase_dirs.items():
            for path in sorted((folder / sub).glob("*.txt")):
                if path.stem not in _FILE_TO_INDEX:
                    raise ModelError(f"lexicon file {path}: {path.stem!r} is not a finding file name")
                target.setdefault(_FILE_TO_INDEX[path.stem], []).extend(_phrase(p) for p in _read_lines(path))
        for group in _CUE_GROUPS:
            path = folder / "cues" / f"{group}.txt"
            if path.exists():
                for line in _read_lines(path):
                    parts = line.split("\t")
                    if len(parts) not in (2, 3) or not _KIND_RE.match(parts[0]):
                        raise ModelError(f"{path}: bad cue line {line!r} (want KIND<TAB>REGEX[<TAB>FILTER])")
                    self.cues[group].append((parts[0], _lower(parts[1]), _lower(parts[2]) if len(parts) == 3 else None))
        path = folder / "cues" / "breakers.txt"
        if path.exists():
            self.breakers.extend(_lower(line) for line in _read_lines(path))


def _compile(pattern: str, source: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ModelError(f"bad regular expression in lexicon ({source}): {exc}") from exc


def _cue_regex(kind: str, alternatives: list[str]) -> re.Pattern[str]:
    """Regex for a cue group. pre: searched in [clause start, mention start); preN: also ends at most
    N words before the mention. postN: matched at the mention end, at most N words after it."""
    direction, window = _KIND_RE.match(kind).groups()  # type: ignore[union-attr]
    alts = _alternation(alternatives)
    cue = f"{_BOUNDARY_L}(?P<cue>{alts}){_BOUNDARY_R}"  # group "cue": the evidence span
    if direction == "pre":
        if window == "":
            return _compile(cue, kind)
        return _compile(f"{cue}(?:{_GAP}{_WORD}){{0,{int(window)}}}[^a-z0-9]*\\Z", kind)
    n = int(window) if window else _DEFAULT_POST_WINDOW
    # the mention may end inside a word (stems): skip the rest of that word first
    return _compile(f"[a-z0-9'-]*[^a-z0-9]*(?:{_WORD}{_GAP}){{0,{n}}}?(?P<cue>{alts}){_BOUNDARY_R}", kind)


def _source_folders(lexicon_dir: str | os.PathLike | None) -> list[Path]:
    if lexicon_dir is None:
        root = Path(str(resources.files("radedge") / "lexicons"))
    else:
        root = Path(lexicon_dir)
    if not root.is_dir():
        raise ModelError(f"lexicon folder not found: {root}")
    if (root / "mention").is_dir() or (root / "cues").is_dir():
        return [root]
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise ModelError(f"no lexicon sources in {root}")
    return folders


class RuleLabeler:
    """CheXpert-style rule labeler driven by lexicon files. Thread-safe: holds only compiled,
    immutable state."""

    def __init__(self, lexicon: _Lexicon) -> None:
        self._findings = tuple(self._compile_finding(lexicon, i) for i in sorted(
            set(lexicon.mention) | set(lexicon.uncertain_mention) | set(lexicon.qualified)))
        cues: list[_Cue] = []
        for group in _CUE_GROUPS:
            by_kind: dict[tuple[str, str | None], list[str]] = {}
            for kind, regex, mfilter in lexicon.cues[group]:
                by_kind.setdefault((kind, mfilter), []).append(regex)
            for (kind, mfilter), alts in by_kind.items():
                cues.append(_Cue(
                    _GROUP_CLASS[group], kind.startswith("pre"), _cue_regex(kind, alts),
                    _compile(mfilter, f"{group} filter") if mfilter else None))
        self._cues = tuple(cues)
        self._breakers = _compile(f"{_BOUNDARY_L}(?:{_alternation(lexicon.breakers)})(?![a-z0-9])"
                                  if lexicon.breakers else r"(?!x)x", "breakers")
        if not self._findings:
            raise ModelError("the lexicon has no mention phrases")

    @staticmethod
    def _compile_finding(lex: _Lexicon, index: int) -> _Finding:
        qualified = set(lex.qualified.get(index, []))
        uncertain = lex.uncertain_mention.get(index, [])
        not_plain = qualified | set(uncertain)
        plain = [p for p in lex.mention.get(index, []) if p not in not_plain]
        groups = [(name, ps) for name, ps in (("p", plain), ("u", uncertain), ("q", sorted(qualified))) if ps]
        pattern = "|".join(f"(?P<{name}>{_BOUNDARY_L}(?:{_alternation(ps)}))" for name, ps in groups)
        unmention = lex.unmention.get(index)
        qualifier = lex.qualifier.get(index)
        if qualified and not qualifier:
            raise ModelError(f"qualified mentions for {index} need a qualifier file")
        source = f"finding {index}"
        return _Finding(
            index,
            _compile(pattern, source),
            _compile(f"{_BOUNDARY_L}(?:{_alternation(unmention)})", source) if unmention else None,
            _compile(f"{_BOUNDARY_L}(?:{_alternation(qualifier)})", source) if qualifier else None,
        )

    @classmethod
    def load(cls, lexicon_dir: str | os.PathLike | None = None,
             extra: Iterable[str | os.PathLike] = ()) -> "RuleLabeler":
        """Build a labeler from lexicon folders. Default: the packaged `radedge/lexicons/`, whose
        subfolders (chexpert-labeler, derived, radedge) are merged in name order. A folder that
        itself has `mention/` or `cues/` is read as a single source. `extra` source folders are
        merged after those (how a benchmark tries a variant rule without copying the lexicon)."""
        lexicon = _Lexicon()
        for folder in [*_source_folders(lexicon_dir), *map(Path, extra)]:
            if not folder.is_dir():
                raise ModelError(f"lexicon folder not found: {folder}")
            lexicon.add_source(folder)
        return cls(lexicon)

    # -- labeling -------------------------------------------------------------------------------

    def classify(self, text: str) -> np.ndarray:
        """int8 [14] class indices for one report text (already reduced to its findings sections).
        Empty or blank text gives all BLANK."""
        return self._run(text, None)[0]

    def label(self, text: str) -> tuple[np.ndarray, dict[int, list[tuple[int, int]]]]:
        """`classify`, and the evidence of each finding labelled positive, negative or uncertain:
        finding index -> sorted `(start, end)` offsets into `text` of the mentions that decided the
        label and of the cue (or qualifier) that decided each one ("no" in "no effusion"). No
        Finding, when positive, points at the whole text: what was read and found normal."""
        evidence: dict[int, list[tuple[int, int]]] = {}
        out, norm = self._run(text, evidence)
        if norm is None:
            return out, {}
        spans = {i: sorted({norm.span(s, e) for s, e in found}) for i, found in evidence.items() if out[i] != BLANK}
        if out[NO_FINDING] == POSITIVE:
            spans[NO_FINDING] = [(0, len(text.rstrip()))]
        return out, spans

    def _run(self, text: str, evidence: dict[int, list[tuple[int, int]]] | None
             ) -> tuple[np.ndarray, "_Normalised | None"]:
        """classify, and the normalised text (None for blank text); with `evidence`, also fills it
        with spans in the normalised text."""
        out = np.zeros(N_FINDINGS, dtype=np.int8)
        if not text or text.isspace():
            return out, None
        norm = _Normalised(text)
        t = norm.text
        ends = [m.end() for m in _SENTENCE_END_RE.finditer(t)]
        breaks = [(m.start(), m.end()) for m in self._breakers.finditer(t)]
        break_starts = [b[0] for b in breaks]
        break_ends = sorted(b[1] for b in breaks)
        other = False
        n = len(t)
        for finding in self._findings:
            best = BLANK
            decided: list[tuple[int, tuple[int, int], tuple[int, int] | None]] = []  # class, mention, cue
            unmentions: list[tuple[int, int]] | None = None  # found on the first mention only
            for m in finding.mention.finditer(t):
                start, end = m.span()
                if unmentions is None:
                    unmentions = [u.span() for u in finding.unmention.finditer(t)] if finding.unmention else []
                if any(us < end and start < ue for us, ue in unmentions):
                    continue
                s_idx = bisect_right(ends, start)
                s_lo = ends[s_idx - 1] if s_idx else 0
                s_hi = ends[s_idx] if s_idx < len(ends) else n
                b = bisect_right(break_ends, start)
                lo = max(s_lo, break_ends[b - 1] if b else 0, start - _MAX_SCOPE)
                b = bisect_left(break_starts, end)
                hi = min(s_hi, break_starts[b] if b < len(break_starts) else n, end + _MAX_SCOPE)
                cls, cue = self._mention_class(t, m, lo, hi, finding)
                if cls is None:
                    continue
                if _PRIORITY[cls] > _PRIORITY[best]:
                    best = cls
                if evidence is not None:
                    decided.append((cls, (start, end), cue))
                if (finding.index == _EDEMA and cls in (POSITIVE, UNCERTAIN)
                        and _HEART_FAILURE_RE.match(m.group())):
                    if _PRIORITY[UNCERTAIN] >= _PRIORITY[out[_CARDIOMEGALY]]:
                        if evidence is not None:
                            kept = evidence.get(_CARDIOMEGALY, []) if out[_CARDIOMEGALY] == UNCERTAIN else []
                            evidence[_CARDIOMEGALY] = kept + [(start, end)]
                        out[_CARDIOMEGALY] = UNCERTAIN
                if best == POSITIVE and finding.index != _EDEMA:  # Edema: a later "chf" still counts
                    break
            if finding.index == OTHER:
                other = best in (POSITIVE, UNCERTAIN)
            elif _PRIORITY[best] >= _PRIORITY[out[finding.index]] and best != BLANK:
                out[finding.index] = best
                if evidence is not None:
                    evidence[finding.index] = [span for cls, mention, cue in decided if cls == best
                                               for span in (mention, cue) if span is not None]
        apply_no_finding(out)
        if other:
            out[NO_FINDING] = BLANK
        return out, norm

    def _mention_class(self, t: str, m: re.Match[str], lo: int, hi: int, finding: _Finding
                       ) -> tuple[int | None, tuple[int, int] | None]:
        """Class of one mention in its clause t[lo:hi] and the span of the cue (or qualifier) that
        decided it (None: no cue); class None for a qualified mention without its qualifier (e.g.
        "heart size" with no "enlarged" nearby: not a Cardiomegaly mention)."""
        start, end = m.span()
        text = m.group()
        for cue in self._cues:
            if cue.mention_filter is not None and not cue.mention_filter.search(text):
                continue
            if cue.pre:
                found = cue.regex.search(t, lo, start) if start > lo else None
            else:
                found = cue.regex.match(t, end, hi) if end < hi else None
            if found:
                return cue.cls, found.span("cue")
        if m.lastgroup == "q":
            q = finding.qualifier.search(t, lo, hi) if finding.qualifier is not None else None
            if q is None:
                return None, None
            # "the heart silhouette and contours are not enlarged": a negation between the mention
            # and its qualifier negates the mention
            gap_lo, gap_hi = (end, q.start()) if q.start() >= end else (q.end(), start)
            for cue in self._cues:
                if cue.pre and cue.cls == NEGATIVE and gap_hi > gap_lo:
                    found = cue.regex.search(t, gap_lo, gap_hi)
                    if found:
                        return NEGATIVE, found.span("cue")
            return POSITIVE, q.span()
        return (UNCERTAIN if m.lastgroup == "u" else POSITIVE), None


class _Normalised:
    """A report text as the rules read it, and the way back to offsets into the text as given.

    Lower-cased (character by character where Unicode lower-casing would change the length, e.g.
    "İ"); a run of white space that ends a sentence (a blank line, or a line break before a capital,
    digit or bullet) becomes one newline, any other run one space: MIMIC-style reports wrap lines
    mid-sentence. `span` maps offsets back through the collapsed runs.
    """

    __slots__ = ("text", "_norm", "_orig")

    def __init__(self, text: str) -> None:
        self._norm: list[int] = [0]  # at normalised offset _norm[k], original offset _orig[k]
        self._orig: list[int] = [0]
        parts: list[str] = []
        pos = size = 0
        for run in _SPACES_RE.finditer(text):
            start, end = run.span()
            ws = run.group()
            if "\n" in ws and (ws.count("\n") > 1 or _NEW_SENTENCE_RE.match(text, end)):
                sep = "\n"
            else:
                sep = " "
            if end - start == 1 and ws == sep:
                continue  # already as it should be: no anchor needed
            parts.append(text[pos:start])
            size += start - pos
            parts.append(sep)
            size += 1
            pos = end
            self._norm.append(size)
            self._orig.append(end)
        parts.append(text[pos:])
        joined = "".join(parts)
        lower = joined.lower()
        if len(lower) != len(joined):
            lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in joined)
        self.text = lower

    def offset(self, pos: int) -> int:
        """Offset in the original text of normalised offset `pos` (a collapsed run maps to its end)."""
        k = bisect_right(self._norm, pos) - 1
        return self._orig[k] + pos - self._norm[k]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of the normalised span `[start, end)` (a mention or cue)."""
        return self.offset(start), self.offset(end - 1) + 1 if end > start else self.offset(start)
