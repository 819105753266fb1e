"""radedge.reports.sentences: sentence spans (offsets exact), CheXpert aggregation with a learned
No Finding, and the sentence-level reading with its evidence."""
from __future__ import annotations

import numpy as np
import pytest

from radedge.labels import BLANK, FINDING_INDEX, N_CLASSES, N_FINDINGS, NEGATIVE, NO_FINDING, POSITIVE, UNCERTAIN
from radedge.reports.sentences import aggregate, label_by_sentence, sentence_spans, sentences

PTX, EFF, SD = FINDING_INDEX["Pneumothorax"], FINDING_INDEX["Pleural Effusion"], FINDING_INDEX["Support Devices"]


def test_spans_point_at_the_sentences():
    text = "No pneumothorax.  Heart size is normal.\r\nLungs clear\n\n1. No acute disease. 2. Stable."
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["No pneumothorax.", "Heart size is normal.", "Lungs clear",
                                             "1. No acute disease.", "2. Stable."]


def test_wrapped_line_is_one_sentence_and_non_ascii_offsets_hold():
    text = "Small left pleural\neffusion. Opacité basale droite; no change.\u2003Ende"
    assert sentences(text) == ["Small left pleural\neffusion.", "Opacité basale droite; no change.", "Ende"]
    for s, e in sentence_spans(text):
        assert text[s:e] == text[s:e].strip() and text[s:e]


def test_blank_and_empty_text_have_no_sentences():
    assert sentence_spans("") == [] and sentence_spans(" \n\n\t") == []


def one_hot(rows: list[dict[int, int]], normal: list[bool]) -> np.ndarray:
    p = np.zeros((len(rows), N_FINDINGS, N_CLASSES), dtype=np.float32)
    p[:, :, BLANK] = 1.0
    for k, (row, ok) in enumerate(zip(rows, normal)):
        p[k, NO_FINDING] = np.eye(N_CLASSES)[POSITIVE if ok else BLANK]
        for f, c in row.items():
            p[k, f] = np.eye(N_CLASSES)[c] * 0.9 + 0.025
    return p


def test_aggregate_precedence_positive_over_uncertain_over_negative():
    classes, probs, chosen = aggregate(one_hot([{PTX: NEGATIVE}, {PTX: UNCERTAIN, EFF: NEGATIVE},
                                                {PTX: POSITIVE}], [True, True, True]))
    assert classes[PTX] == POSITIVE and chosen[PTX] == 2
    assert classes[EFF] == NEGATIVE and chosen[EFF] == 1
    assert probs[PTX].argmax() == POSITIVE
    assert classes[NO_FINDING] == BLANK  # a positive finding rules No Finding out
    classes, _, chosen = aggregate(one_hot([{PTX: NEGATIVE}, {PTX: UNCERTAIN}], [True, True]))
    assert classes[PTX] == UNCERTAIN and chosen[PTX] == 1 and classes[NO_FINDING] == BLANK


def test_no_finding_is_learned_not_derived():
    # no finding among the 13 is positive, but one sentence is not normal ("calcified granuloma")
    classes, _, chosen = aggregate(one_hot([{PTX: NEGATIVE}, {}], [True, False]))
    assert classes[NO_FINDING] == BLANK and chosen[NO_FINDING] == -1
    classes, _, _ = aggregate(one_hot([{PTX: NEGATIVE}, {SD: POSITIVE}], [True, True]))
    assert classes[NO_FINDING] == POSITIVE  # Support Devices does not rule No Finding out
    classes, probs, chosen = aggregate(np.zeros((0, N_FINDINGS, N_CLASSES), dtype=np.float32))
    assert (classes == BLANK).all() and (probs[:, BLANK] == 1).all() and (chosen == -1).all()


def test_aggregate_rejects_wrong_shape():
    with pytest.raises(ValueError):
        aggregate(np.zeros((2, 14, 3)))


def test_label_by_sentence_evidence_and_distinct_sentences():
    texts = ["No pneumothorax. Small left effusion.", "No pneumothorax.", ""]
    calls = []

    def fake(sents):
        calls.append(list(sents))
        rows = [{PTX: NEGATIVE} if "pneumothorax" in s else {EFF: POSITIVE} for s in sents]
        return one_hot(rows, ["pneumothorax" in s for s in sents])

    classes, probs, evidence = label_by_sentence(texts, fake)
    assert calls == [["No pneumothorax.", "Small left effusion."]]  # each distinct sentence once
    assert classes[0, EFF] == POSITIVE and classes[0, PTX] == NEGATIVE and classes[0, NO_FINDING] == BLANK
    (s, e), = evidence[0][EFF]
    assert texts[0][s:e] == "Small left effusion."
    (s, e), = evidence[0][PTX]
    assert texts[0][s:e] == "No pneumothorax."
    assert classes[1, NO_FINDING] == POSITIVE and evidence[1][NO_FINDING] == [(0, 16)]
    assert (classes[2] == BLANK).all() and evidence[2] == {}
    assert probs.shape == (3, N_FINDINGS, N_CLASSES)
