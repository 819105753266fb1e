"""`ReportLabeler`: the Python API that turns report texts into the 14 CheXpert labels.

    >>> from radedge import ReportLabeler
    >>> labeler = ReportLabeler.load("rules")          # or "default", a model name, a model folder
    >>> [r.labels["Pleural Effusion"] for r in labeler(["Small left pleural effusion."])]
    [1.0]

One call labels a list of reports; each gets a `ReportResult`, in order. A report that cannot be
read (bytes that are not UTF-8) gets an `error` and blank labels instead of stopping the others.
Nothing here imports torch: models run on onnxruntime (or TensorRT) through `radedge.backends`.
"""
from __future__ import annotations

import functools

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ..errors import InputError, ManifestError, ReportDecodeError, item_failure
from ..io.files import MAX_REPORT_CHARS, text_encoding
from ..io.readers import Report
from ..labels import (BLANK, CSV_VALUES, FINDING_INDEX, FINDINGS, N_CLASSES, N_FINDINGS, NO_FINDING, POSITIVE,
                      UNCERTAIN, apply_no_finding, gls_rates, has_abnormal)
from .sections import ReadText, read_text, select_text
from .sentences import label_by_sentence
from .windows import ReportWindows, combine_reports, not_mentioned, softmax

if TYPE_CHECKING:
    from ..backends import Backend
    from .rules import RuleLabeler

RULES = "rules"
TASK = "report-labels"
# How a report model reads a report (manifest "reading": {"unit": ...}): the whole read text in
# windows, arg-max per finding and No Finding derived from the other findings (REPORT); or one
# sentence at a time, sentence labels aggregated CheXpert's way and No Finding learned (SENTENCE,
# radedge.reports.sentences).
REPORT, SENTENCE = "report", "sentence"
UNITS = (REPORT, SENTENCE)


@dataclass(frozen=True, eq=False)  # eq=False: numpy fields have no single truth value
class ReportResult:
    """The labels of one report.

    `classes[i]` is the class index (labels.CLASSES) of FINDINGS[i]; `probs` the class
    probabilities (one-hot for the rule labeler); `rates` the GLS rate per finding
    (labels.gls_rates). `error` is None, or "ErrorType: message" with every label blank.

    `evidence` (DESIGN.md "Evidence"): finding name -> list of `[start, end]` character offsets
    into the report string as it was read (decoded; before section extraction), one entry per
    finding labelled positive, negative or uncertain, so `text[start:end]` is the mention or its
    cue. The rule labeler gives the mentions that decided each label and their cues ("no",
    "possible", "enlarged" for "the heart"); No Finding, when positive, gets the span of every
    section that was read (the text found normal). None when the engine gives no evidence.
    """

    id: Any
    length: int  # characters of the decoded report (bytes, when it could not be decoded)
    classes: np.ndarray  # int8 [14]
    probs: np.ndarray  # float32 [14, 4]
    rates: np.ndarray  # float32 [14]
    error: str | None = None
    evidence: dict[str, list[list[int]]] | None = None

    @property
    def labels(self) -> dict[str, float | None]:
        """Finding -> CheXpert CSV value: 1.0 positive, 0.0 negative, -1.0 uncertain, None not mentioned."""
        return {name: CSV_VALUES[int(c)] for name, c in zip(FINDINGS, self.classes)}

    @property
    def ok(self) -> bool:
        return self.error is None


def decode_report(item: Report) -> str:
    """Report text from str or bytes: UTF-8 (a leading BOM dropped), or UTF-16 / UTF-32 when a
    byte-order mark says so; strict, so bad bytes raise ReportDecodeError (an InputError)."""
    if isinstance(item, str):
        return item
    if isinstance(item, InputError):
        raise item
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        encoding, skip = text_encoding(data[:4096])
        try:
            return data[skip:].decode(encoding, errors="strict")
        except UnicodeDecodeError as exc:
            name = "UTF-8" if encoding == "utf-8" else encoding.upper()
            raise ReportDecodeError(f"not valid {name} at byte {skip + exc.start}: "
                                    f"{data[skip + exc.start:skip + exc.start + 4]!r}") from exc
    raise InputError(f"a report must be str or bytes, not {type(item).__name__}")


def report_evidence(read: ReadText, spans: dict[int, list[tuple[int, int]]]) -> dict[str, list[list[int]]]:
    """Evidence keyed by finding name, in report offsets, from spans in `read.text` by finding
    index (`ReadText.to_report`; a span across two sections becomes one span per section)."""
    return {FINDINGS[i]: [[s, e] for start, end in found for s, e in read.to_report(start, end)]
            for i, found in sorted(spans.items())}


def with_rule_classes(classes: np.ndarray, rule_classes: np.ndarray, findings: Sequence[int],
                      model_uncertain: Sequence[int] = ()) -> np.ndarray:
    """A rule/student combination's classes (`[14]` or `[n, 14]`): the rules' class on `findings`,
    the model's elsewhere, and the model's No Finding (already blanked by the model's own findings)
    blanked again where a finding is then positive or uncertain: No Finding needs both to find nothing.

    On `model_uncertain` findings a rules positive that the model reads as uncertain stays uncertain:
    the model learned from the expert annotations which mentions the annotators did not code as
    present (an "opacity" that is not an infiltrate); the rules' negations and hedges are kept.
    The runtime and the cross-validation (export.reports.select) combine with this one function."""
    model = np.asarray(classes)
    out = np.array(classes, dtype=np.int8, copy=True)
    idx = list(findings)
    out[..., idx] = np.asarray(rule_classes)[..., idx]
    doubt = list(model_uncertain)
    if doubt:
        keep = (out[..., doubt] == POSITIVE) & (model[..., doubt] == UNCERTAIN)
        out[..., doubt] = np.where(keep, UNCERTAIN, out[..., doubt])
    out[..., NO_FINDING] = np.where(has_abnormal(out), BLANK, out[..., NO_FINDING])
    return out


def check_text(text: str, max_chars: int) -> str:
    """`text` if it can be labelled: at most `max_chars` characters, and text (no lone surrogates)."""
    if len(text) > max_chars:
        raise InputError(f"report is {len(text)} characters, over the {max_chars}-character cap")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ReportDecodeError(f"not valid Unicode text: lone surrogate at character {exc.start}") from exc
    return text


def blank_result(report_id: Any, length: int, error: str | None = None) -> ReportResult:
    """All 14 findings not mentioned (an empty report, or one that failed with `error`)."""
    probs = not_mentioned()
    return ReportResult(report_id, length, np.zeros(N_FINDINGS, dtype=np.int8), probs, gls_rates(probs), error)


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class ReportLabeler:
    """Labels reports with a report model (onnxruntime / TensorRT) or the rule labeler.

    Safe to call from several threads at once: the tokenizer, the backend session and the rule
    labeler are only read during a call, and each call keeps its own buffers.
    """

    def __init__(self, name: str, path: Path | None, batch_size: int = 32, *,
                 windows: ReportWindows | None = None, backend: "Backend | None" = None,
                 rules: "RuleLabeler | None" = None, unit: str = "report",
                 rules_findings: Sequence[str] = (), model_uncertain: Sequence[str] = (),
                 sections: str = "findings,impression", max_report_chars: int = MAX_REPORT_CHARS) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_report_chars < 1:
            raise ValueError(f"max_report_chars must be >= 1, got {max_report_chars}")
        self.max_report_chars = max_report_chars
        self.identity: dict[str, Any] = {"name": name}  # what made an output (set by load: name and sha256)
        if (rules is None) == (backend is None or windows is None):
            raise ValueError("a ReportLabeler needs either rules, or windows and a backend")
        self.name, self.path, self.batch_size = name, path, batch_size
        self.windows, self.backend, self.rules = windows, backend, rules
        if unit not in UNITS:
            raise ManifestError(f"{path}: reading unit must be one of {UNITS}, got {unit!r}")
        self.unit = unit
        # A rule/student combination (manifest "reading": {"rules_findings": [...]}): these findings
        # take the rule labeler's class and evidence; the model gives the others (its learned No
        # Finding among them, blanked when a finding is positive or uncertain).
        unknown = sorted(set(rules_findings) - set(FINDINGS) | set(rules_findings) & {FINDINGS[NO_FINDING]})
        if unknown:
            raise ManifestError(f"{path}: rules_findings must be findings other than No Finding, not {unknown}")
        if rules_findings and backend is None:
            raise ValueError("rules_findings combine a model with the rules: give windows and a backend")
        self.rules_findings = [FINDING_INDEX[f] for f in rules_findings]
        if not set(model_uncertain) <= set(rules_findings):
            raise ManifestError(f"{path}: model_uncertain must be among rules_findings, not "
                                f"{sorted(set(model_uncertain) - set(rules_findings))}")
        self.model_uncertain = [FINDING_INDEX[f] for f in model_uncertain]
        self._companion: "RuleLabeler | None" = None
        if self.rules_findings:
            from .rules import RuleLabeler

            self._companion = RuleLabeler.load()
        select_text("", sections)  # an unknown choice raises here, before any report
        self.sections = sections  # which report sections are read (`--sections`)
        if backend is not None:
            self._input_names = {spec.name for spec in backend.inputs}
            if not {"input_ids", "attention_mask"} <= self._input_names:
                raise ManifestError(f"{path}: a report model takes input_ids and attention_mask, "
                                    f"this one takes {sorted(self._input_names)}")
            if "logits" not in {spec.name for spec in backend.outputs}:
                raise ManifestError(f"{path}: a report model must output 'logits' [batch, 14, 4]")

    @classmethod
    def load(cls, model: str | os.PathLike = "default", backend: str = "onnxruntime", device: str = "cpu",
             threads: int | None = None, batch_size: int = 32,
             sections: str = "findings,impression",
             max_report_chars: int = MAX_REPORT_CHARS) -> "ReportLabeler":
        """`"rules"` (the rule labeler), `"default"` (the shipped student), a model name or folder.

        Models are verified on load (sha256 of every file, graph inputs/outputs vs the manifest):
        a missing or tampered model raises ModelError; a missing device DeviceUnavailableError.
        """
        if str(model) == RULES:
            from .rules import RuleLabeler

            from importlib import resources

            from ..manifest import tree_sha256

            labeler = cls(RULES, None, batch_size, rules=RuleLabeler.load(), sections=sections,
                          max_report_chars=max_report_chars)
            labeler.identity["sha256"] = tree_sha256(str(resources.files("radedge") / "lexicons"))
            return labeler
        from ..registry import open_model

        loaded = open_model(model, task=TASK, backend=backend, device=device, threads=threads)
        windows = ReportWindows.from_model_dir(loaded.path, loaded.manifest)
        reading = loaded.manifest.extra.get("reading") or {}
        labeler = cls(loaded.manifest.name, loaded.path, batch_size, windows=windows, backend=loaded.backend,
                      unit=reading.get("unit", REPORT), rules_findings=reading.get("rules_findings", ()),
                      model_uncertain=reading.get("model_uncertain", ()),
                      sections=sections, max_report_chars=max_report_chars)
        labeler.identity = loaded.identity
        return labeler

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"ReportLabeler(name={self.name!r}{where}, batch_size={self.batch_size})"

    def __call__(self, reports: Report | Iterable[Report],
                 ids: Sequence[Any] | None = None) -> ReportResult | list[ReportResult]:
        """One report (str or bytes) -> one ReportResult; a list (any iterable) of reports -> a list
        of ReportResults, in order. `ids` default to the reports' positions. A report that cannot be
        labelled (bad bytes, over `max_report_chars`, not text) gets its `error`; the others are
        labelled exactly as without it. What is not a report or a collection of reports (a dict, a
        set, a DataFrame) raises TypeError."""
        if isinstance(reports, (str, bytes, bytearray, memoryview, InputError)):
            return self([reports], ids)[0]  # type: ignore[index]
        if isinstance(reports, (dict, set, frozenset)) or hasattr(reports, "columns") \
                or not isinstance(reports, Iterable):
            raise TypeError(f"ReportLabeler takes a report (str or bytes) or a list of them, not "
                            f"{type(reports).__name__}" + (" (pass one column)" if hasattr(reports, "columns") else ""))
        reports = list(reports)
        ids = list(range(len(reports))) if ids is None else list(ids)
        if len(ids) != len(reports):
            raise ValueError(f"{len(reports)} reports but {len(ids)} ids")
        results: list[ReportResult | None] = [None] * len(reports)
        if self.sections != "findings,impression":
            prepare = functools.partial(select_text, sections=self.sections)
        else:
            prepare = self.windows.model_read if self.windows is not None else read_text
        todo: dict[int, ReadText] = {}  # position -> the section text the engine reads
        lengths: dict[int, int] = {}
        for i, item in enumerate(reports):
            try:
                text = check_text(decode_report(item), self.max_report_chars)
                readable = prepare(text)
            except Exception as exc:  # noqa: BLE001 (one report's failure, recorded against it)
                length = len(item) if isinstance(item, (str, bytes, bytearray)) else 0
                results[i] = blank_result(ids[i], length, _error_text(exc))
                continue
            if readable.text.strip():
                todo[i], lengths[i] = readable, len(text)
            else:  # empty, or only sections the labelers do not read: nothing to label
                results[i] = blank_result(ids[i], len(text))
        for i, outcome in self._label_each(todo).items():
            if isinstance(outcome, BaseException):
                results[i] = blank_result(ids[i], lengths[i], _error_text(outcome))
            else:
                classes, probs, evidence = outcome
                results[i] = ReportResult(ids[i], lengths[i], classes, probs, gls_rates(probs), evidence=evidence)
        return results  # type: ignore[return-value]

    def accepts(self, report: Report) -> bool:
        """Whether `report` will reach the engine (it decodes, and is within max_report_chars)."""
        try:
            check_text(decode_report(report), self.max_report_chars)
        except InputError:
            return False
        return True

    def _label_each(self, todo: dict[int, ReadText]) -> dict[int, Any]:
        """position -> (classes, probs, evidence), or the exception that report alone raised. All
        texts go through the engine together; only if that fails is each retried alone, so one report
        that breaks a native library (a tokenizer panic) is its own error, not its batch's."""
        if not todo:
            return {}
        try:
            classes, probs, evidence = self._label(list(todo.values()))
            return {i: (classes[k], probs[k], evidence[k] if evidence is not None else None)
                    for k, i in enumerate(todo)}
        except BaseException as exc:  # noqa: BLE001 (native code may raise non-Exceptions)
            if not item_failure(exc):
                raise
            if len(todo) == 1:
                return {next(iter(todo)): exc}
        return {i: outcome for one in todo.items() for i, outcome in self._label_each(dict([one])).items()}

    # ---- the two engines ------------------------------------------------------------------------
    def _label(self, reads: list[ReadText]) -> tuple[np.ndarray, np.ndarray, list[dict[str, list[list[int]]]] | None]:
        """Classes int8 [n, 14], class probabilities float32 [n, 14, 4] and evidence (report
        offsets; None when the engine has none) of non-empty section texts."""
        if self.rules is not None:
            labelled = [self.rules.label(r.text) for r in reads]
            classes = np.stack([c for c, _ in labelled]).astype(np.int8, copy=False)
            evidence = [report_evidence(r, ev) for r, (_, ev) in zip(reads, labelled)]
            return classes, np.eye(N_CLASSES, dtype=np.float32)[classes], evidence
        if self.unit == SENTENCE:
            if self._companion is None:
                classes, probs, spans = label_by_sentence([r.text for r in reads], self._model_probs)
            else:
                classes, probs, spans = self._combined([r.text for r in reads])
            return classes, probs, [report_evidence(r, ev) for r, ev in zip(reads, spans)]
        probs = self._model_probs([r.text for r in reads])
        # Arg-max class per finding, then No Finding the CheXpert way, as the rule labeler does;
        # the probabilities are left as the model gave them.
        return apply_no_finding(probs.argmax(axis=-1).astype(np.int8)), probs, None

    def _combined(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[dict[int, list[tuple[int, int]]]]]:
        """A rule/student combination: the rules on every report, the model only where it can change
        a label. When the rules give all 13 findings and find one of them positive or uncertain, No
        Finding is blank whatever the model reads, so the model is needed only for a rules positive
        on a `model_uncertain` finding; those reports' No Finding gets "not mentioned" probabilities."""
        assert self._companion is not None
        ruled = [self._companion.label(t) for t in texts]
        n = len(texts)
        classes = np.zeros((n, N_FINDINGS), dtype=np.int8)
        probs = np.broadcast_to(not_mentioned(), (n, N_FINDINGS, N_CLASSES)).copy()
        spans: list[dict[int, list[tuple[int, int]]]] = [{} for _ in texts]
        every = len(self.rules_findings) == N_FINDINGS - 1
        need = [k for k, (c, _) in enumerate(ruled)
                if not every or not has_abnormal(c) or (c[self.model_uncertain] == POSITIVE).any()]
        if need:
            c, p, ev = label_by_sentence([texts[k] for k in need], self._model_probs)
            classes[need], probs[need] = c, p
            for k, e in zip(need, ev):
                spans[k] = e
        self._with_rules(ruled, classes, probs, spans)
        return classes, probs, spans

    def _with_rules(self, ruled: list[tuple[np.ndarray, dict[int, list[tuple[int, int]]]]], classes: np.ndarray,
                    probs: np.ndarray, spans: list[dict[int, list[tuple[int, int]]]]) -> None:
        """Put the rules' classes, one-hot probabilities and evidence (`ruled`, one per report) on
        `rules_findings` (in place); a cell the model keeps uncertain (`model_uncertain`) keeps the
        model's probabilities and evidence."""
        eye = np.eye(N_CLASSES, dtype=np.float32)
        idx = self.rules_findings
        for k, (rule_classes, rule_spans) in enumerate(ruled):
            combined = with_rule_classes(classes[k], rule_classes, idx, self.model_uncertain)
            rules_own = [f for f in idx if combined[f] == rule_classes[f]]
            classes[k] = combined
            probs[k, rules_own] = eye[rule_classes[rules_own]]
            spans[k] = {f: v for f, v in spans[k].items() if f not in rules_own}
            spans[k].update({f: rule_spans[f] for f in rules_own if f in rule_spans})
            if classes[k, NO_FINDING] != POSITIVE:
                spans[k].pop(NO_FINDING, None)
            spans[k] = dict(sorted(spans[k].items()))

    def _model_probs(self, texts: list[str]) -> np.ndarray:
        assert self.windows is not None and self.backend is not None
        windows = self.windows.encode_prepared(texts)
        window_probs: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for batch in self.windows.batches(windows, self.batch_size):
            feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
            window_probs.append(softmax(self.backend.run(feeds)["logits"]))
            owners.append(batch.owners)
        if not window_probs:  # only header-only texts: nothing for the model to read
            return np.broadcast_to(not_mentioned(), (len(texts), N_FINDINGS, N_CLASSES)).copy()
        return combine_reports(np.concatenate(window_probs), np.concatenate(owners), len(texts))
