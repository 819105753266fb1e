"""benchmarks.accuracy rules-cv: folds keep identical texts together; variants load as extra sources."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.accuracy import VARIANTS, cv_folds
from radedge.errors import ModelError
from radedge.labels import FINDINGS, POSITIVE, UNCERTAIN
from radedge.reports.rules import RuleLabeler


def test_identical_texts_share_a_fold() -> None:
    texts = [f"Report {i % 37}. Small effusion." for i in range(400)]
    texts += ["FINDINGS: Report 3. Small effusion.", "INDICATION: cough\nFINDINGS: Report 3. Small effusion."]
    folds = cv_folds(texts, 5)
    assert set(folds.tolist()) == set(range(5))  # every fold used
    by_text: dict[str, set[int]] = {}
    for t, f in zip(texts, folds.tolist()):
        by_text.setdefault(t, set()).add(f)
    assert all(len(f) == 1 for f in by_text.values())
    assert folds[-1] == folds[-2] == folds[3]  # the same read text, whatever the headers around it


def test_a_variant_is_the_packaged_lexicon_plus_one_source() -> None:
    cardio = FINDINGS.index("Cardiomegaly")
    packaged, variant = RuleLabeler.load(), RuleLabeler.load(extra=[VARIANTS / "borderline-hedge"])
    assert packaged.classify("Borderline cardiomegaly.")[cardio] == POSITIVE
    assert variant.classify("Borderline cardiomegaly.")[cardio] == UNCERTAIN
    text = "No pneumothorax. Small left pleural effusion."
    assert np.array_equal(packaged.classify(text), variant.classify(text))
    with pytest.raises(ModelError, match="not found"):
        RuleLabeler.load(extra=[VARIANTS / "no-such-variant"])
