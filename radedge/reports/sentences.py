"""Report text -> sentence spans: the unit the sentence-level report student reads.

Why sentences: a negation or hedge almost never reaches across a full stop, so a model that reads
one sentence at a time only has to learn scope inside a short span; the report's label per finding
is then the CheXpert aggregation of its sentences' labels (`radedge.reports.windows.aggregate`), and
the sentence that decided a label is its evidence. Training (`export/`) and runtime split text with
this one function.

A sentence ends at '.', '!' or '?' followed by white space, at a blank line, or at a line break
before a capital, a digit or a bullet (a line break before anything else is a wrapped line);
a list number ("1.") stays with the sentence it numbers.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from ..labels import BLANK, N_CLASSES, N_FINDINGS, NEGATIVE, NO_FINDING, POSITIVE, UNCERTAIN, has_abnormal

_END_RE = re.compile(r"(?<=[.!?])\s+|\n[ \t\r\f\v]*\n\s*|\n\s*(?=[A-Z0-9*\u2022-])")
_ENUMERATOR_RE = re.compile(r"(?:\A|[\s:])\d{1,2}[.)]\Z")  # "1." at a sentence's end: a list number


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """`(start, end)` of each non-blank sentence of `text`, in order, without surrounding white space."""
    spans = []
    pos = 0
    for match in [*_END_RE.finditer(text), None]:
        end = match.start() if match else len(text)
        start = pos
        while start < end and text[start].isspace():
            start += 1
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        if stop > start:
            if spans and _ENUMERATOR_RE.search(text[spans[-1][0]:spans[-1][1]]):
                start = spans.pop()[0]  # "1. No effusion." is one sentence
            spans.append((start, stop))
        if match:
            pos = match.end()
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of `text` (`sentence_spans`), as strings."""
    return [text[s:e] for s, e in sentence_spans(text)]


# ---- sentence labels -> report labels -----------------------------------------------------------
_RANK = np.zeros(N_CLASSES, dtype=np.int64)
_RANK[[BLANK, NEGATIVE, UNCERTAIN, POSITIVE]] = [0, 1, 2, 3]  # CheXpert precedence


def aggregate(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One report's classes `[14]`, class probabilities `[14, 4]` and deciding sentence per finding
    `[14]` (-1: none) from its sentences' class probabilities `[sentences, 14, 4]`.

    Findings other than No Finding: each sentence's arg-max class, then CheXpert's precedence
    positive > uncertain > negative > not mentioned; the deciding sentence is the surest of those
    with the winning class, and its distribution is the report's. No Finding is learned (a sentence
    is "positive" when it reports nothing abnormal, including abnormalities outside the 13 findings):
    the report is No Finding only when every sentence is, and no other finding but Support Devices is
    positive or uncertain; its distribution is that of the least normal sentence.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[1:] != (N_FINDINGS, N_CLASSES):
        raise ValueError(f"expected sentence probabilities [sentences, {N_FINDINGS}, {N_CLASSES}], got {probs.shape}")
    classes = np.zeros(N_FINDINGS, dtype=np.int8)
    chosen = np.full(N_FINDINGS, -1, dtype=np.int64)
    out = np.zeros((N_FINDINGS, N_CLASSES), dtype=np.float32)
    out[:, BLANK] = 1.0
    if probs.shape[0] == 0:
        return classes, out, chosen
    arg = probs.argmax(axis=-1)  # [sentences, 14]
    cols = np.arange(N_FINDINGS)
    # rank of the class, then its probability, decides: the surest sentence of the strongest class
    key = _RANK[arg] * 2.0 + probs[np.arange(len(probs))[:, None], cols[None, :], arg]
    best = key.argmax(axis=0)
    classes[:] = arg[best, cols]
    out[:] = probs[best, cols]
    chosen[:] = np.where(classes != BLANK, best, -1)
    least = int(probs[:, NO_FINDING, POSITIVE].argmin())
    normal = bool((arg[:, NO_FINDING] == POSITIVE).all())
    out[NO_FINDING] = probs[least, NO_FINDING]
    classes[NO_FINDING] = BLANK
    chosen[NO_FINDING] = -1
    if normal and not has_abnormal(classes):
        classes[NO_FINDING] = POSITIVE
    return classes, out, chosen


def label_by_sentence(texts: Sequence[str], sentence_probs: Callable[[list[str]], np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray, list[dict[int, list[tuple[int, int]]]]]:
    """Classes int8 `[n, 14]`, probabilities `[n, 14, 4]` and evidence of each text read sentence by sentence.

    `sentence_probs` labels a list of sentences (`[m, 14, 4]`); each distinct sentence of the batch is
    labelled once (reports repeat "No pneumothorax." hundreds of times). Evidence: finding index ->
    `(start, end)` offsets into the text of the sentence that decided a positive, negative or
    uncertain label; for a positive No Finding, every sentence (the text found normal).
    """
    spans = [sentence_spans(t) for t in texts]
    index: dict[str, int] = {}
    members = [np.array([index.setdefault(t[s:e], len(index)) for s, e in sp], dtype=np.int64)
               for t, sp in zip(texts, spans)]
    probs = sentence_probs(list(index)) if index else np.zeros((0, N_FINDINGS, N_CLASSES), dtype=np.float32)
    classes = np.zeros((len(texts), N_FINDINGS), dtype=np.int8)
    out = np.zeros((len(texts), N_FINDINGS, N_CLASSES), dtype=np.float32)
    evidence: list[dict[int, list[tuple[int, int]]]] = []
    for k, (m, sp) in enumerate(zip(members, spans)):
        classes[k], out[k], chosen = aggregate(probs[m])
        found = {f: [sp[int(c)]] for f, c in enumerate(chosen) if c >= 0}
        if classes[k, NO_FINDING] == POSITIVE:
            found[NO_FINDING] = list(sp)
        evidence.append(dict(sorted(found.items())))
    return classes, out, evidence
