"""export.reports.cv: folds keep identical texts together; fold scores and their summary."""
from __future__ import annotations

import numpy as np
import pytest

from export.reports import cv
from radedge.eval import Gold
from radedge.labels import FINDING_INDEX, N_FINDINGS, POSITIVE


def test_identical_texts_share_a_fold():
    base = ["FINDINGS: No pneumothorax.\n\nIMPRESSION: Normal chest.", "FINDINGS: Small effusion.",
            "Heart is enlarged.", "Lungs clear."] * 5
    variants = ["findings:  no pneumothorax.\n\nIMPRESSION: normal   chest.",  # case and spacing only
                "COMPARISON: 2010.\n\nFINDINGS: Small effusion."]  # a section the labelers do not read
    texts = base + variants + [f"report number {i}" for i in range(200)]
    folds = cv.fold_of(texts, 5)
    for t, f in zip(texts, folds):
        same = [g for u, g in zip(texts, folds) if cv.text_key(u) == cv.text_key(t)]
        assert set(same) == {f}
    assert folds[len(base)] == folds[0] and folds[len(base) + 1] == folds[1]
    assert set(folds.tolist()) == set(range(5))  # 200 distinct texts fill every fold
    assert (cv.fold_of(texts[::-1], 5)[::-1] == folds).all()  # a report's fold ignores the others


def test_k_below_two_is_refused():
    with pytest.raises(ValueError):
        cv.fold_of(["a"], 1)


def test_fold_scores_and_summary():
    scored = ("No Finding", "Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax")
    n = 8
    gold = np.zeros((n, N_FINDINGS), dtype=np.int8)
    gold[:, FINDING_INDEX["Pneumothorax"]] = [1, 0, 1, 0, 1, 0, 1, 0]
    gold[:, FINDING_INDEX["No Finding"]] = [0, 1, 0, 1, 0, 1, 0, 1]
    g = Gold([str(i) for i in range(n)], np.where(gold == 1, POSITIVE, 0).astype(np.int8), "openi", scored)
    perfect = g.classes.copy()
    folds = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    scores = cv.fold_scores(g, perfect, folds)
    assert len(scores) == 2 and all(s.per_finding["Pneumothorax"] == 1.0 for s in scores)
    s = cv.summary(scores)
    assert s["pneumothorax_f1"] == [1.0, 0.0] and s["no_finding_f1"] == [1.0, 0.0]
    wrong = perfect.copy()
    wrong[:, FINDING_INDEX["Pneumothorax"]] = 0
    assert cv.summary(cv.fold_scores(g, wrong, folds))["pneumothorax_f1"] == [0.0, 0.0]


def test_a_fold_without_positives_has_no_f1_and_pooled_scores_count_every_report():
    scored = ("No Finding", "Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax")
    n = 12
    gold = np.zeros((n, N_FINDINGS), dtype=np.int8)
    gold[:, FINDING_INDEX["Pneumothorax"]] = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # all in fold 0
    gold[:, FINDING_INDEX["No Finding"]] = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    g = Gold([str(i) for i in range(n)], np.where(gold == 1, POSITIVE, 0).astype(np.int8), "openi", scored)
    folds = np.array([0] * 6 + [1] * 6)
    pred = g.classes.copy()
    pred[2, FINDING_INDEX["Pneumothorax"]] = 0  # one of three missed: F1 0.8
    scores = cv.fold_scores(g, pred, folds)
    assert np.isnan(scores[1].per_finding["Pneumothorax"])  # no positive in fold 1: undefined, not 0
    s = cv.summary(scores)
    assert s["pneumothorax_f1"] == [0.8, 0.0]  # the mean of the one defined fold
    p = cv.pooled(g, pred, boot=200)
    assert p["pneumothorax_f1"][0] == 0.8 and p["no_finding_f1"][0] == 1.0
    lo, hi = p["pneumothorax_f1"][1:]
    assert 0.0 <= lo <= 0.8 <= hi <= 1.0 and lo < hi  # resampling 3 positives spreads the F1
    assert cv.format_pooled(p).count(",") == 4 and cv.format_row("x", s).count("±") == 4


def _gold(pneumonia: list[int]) -> Gold:
    scored = ("No Finding", "Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax")
    gold = np.zeros((len(pneumonia), N_FINDINGS), dtype=np.int8)
    gold[:, FINDING_INDEX["Pneumonia"]] = pneumonia
    gold[:, FINDING_INDEX["No Finding"]] = [1 - p for p in pneumonia]
    return Gold([str(i) for i in range(len(pneumonia))], np.where(gold == 1, POSITIVE, 0).astype(np.int8),
                "openi", scored)


def test_paired_gain_is_zero_against_itself_and_positive_for_a_better_labeler():
    g = _gold([1, 0] * 20)
    perfect = g.classes.copy()
    worse = perfect.copy()
    worse[:8, FINDING_INDEX["Pneumonia"]] = 0  # four of twenty positives missed
    same = cv.paired_gain(g, worse, worse, boot=100)
    assert all(same[k] == [0.0, 0.0, 0.0] for k in ("macro_f1", "six_mean", "no_finding_f1"))
    gain = cv.paired_gain(g, perfect, worse, boot=200)["macro_f1"]
    assert gain[0] > 0 and 0 < gain[1] <= gain[0] <= gain[2]  # every resample has the better one ahead
    line = cv.format_gain(cv.paired_gain(g, perfect, worse, boot=50))
    assert line.startswith("  minus rules") and line.count("] ") + line.endswith("]") == 5  # label + 4 metrics


def test_model_uncertain_is_chosen_where_it_raises_f1_and_nested_on_other_folds():
    from export.reports import select
    from radedge.labels import UNCERTAIN

    pna = FINDING_INDEX["Pneumonia"]
    g = _gold([1, 0, 0, 0] * 15)
    rules = g.classes.copy()
    rules[:, pna] = POSITIVE  # the rules call every report's mention positive
    model = np.zeros_like(rules)
    model[:, pna] = np.where(g.classes[:, pna] == POSITIVE, POSITIVE, UNCERTAIN)  # the model knows better
    rows = np.arange(len(g.ids))
    assert select.model_uncertain_findings(g, model, rules, rows) == ["Pneumonia"]
    assert select.model_uncertain_findings(g, rules, rules, rows) == []  # no uncertain: nothing to gain
    folds = np.arange(len(g.ids)) % 3
    out, chosen = select.nested_uncertain(g, model, rules, folds)
    assert chosen == [["Pneumonia"]] * 3
    assert (out[:, pna] == model[:, pna]).all()
