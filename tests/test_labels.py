"""radedge.labels: the schema, the CheXpert CSV values, the No Finding rule, the GLS rate."""
from __future__ import annotations

import numpy as np
import pytest

from radedge import labels


def test_schema_order_and_csv_values():
    assert labels.FINDINGS[0] == "No Finding" and labels.FINDINGS[-1] == "Support Devices"
    assert len(labels.FINDINGS) == 14
    assert [labels.class_to_csv(c) for c in range(4)] == ["", "1.0", "0.0", "-1.0"]
    assert [labels.csv_to_class(v) for v in ["", "1.0", "0", "-1.0", None]] == [0, 1, 2, 3, 0]
    with pytest.raises(ValueError):
        labels.csv_to_class("2.0")


def test_no_finding_rule_ignores_support_devices_and_negatives():
    c = np.zeros((3, 14), dtype=np.int64)
    c[0, labels.SUPPORT_DEVICES] = labels.POSITIVE
    c[1, labels.FINDING_INDEX["Edema"]] = labels.UNCERTAIN
    c[2, labels.FINDING_INDEX["Edema"]] = labels.NEGATIVE
    labels.apply_no_finding(c)
    assert list(c[:, labels.NO_FINDING]) == [labels.POSITIVE, labels.BLANK, labels.POSITIVE]


def test_gls_rates_sign_follows_hedging():
    p = np.zeros((4, 4), dtype=np.float32)
    p[0, labels.BLANK] = 1
    p[1, labels.UNCERTAIN] = 1
    p[2, labels.POSITIVE] = 1
    p[3, labels.NEGATIVE] = 1
    r = labels.gls_rates(p)
    assert r[0] == 0 and r[1] > 0 and r[2] < 0 and r[3] < 0
    assert np.all(np.abs(r) < 1)
    with pytest.raises(ValueError):
        labels.gls_rates(np.zeros((14, 3)))
