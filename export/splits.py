"""The deterministic hold-out of the Open-i dev reports that every honest number is measured on.

`shared/data/openi` already splits Open-i into dev / test with sha256(id) % 100 < 60; reusing that hash
would make this hold-out a function of the dev/test split (all dev ids have the same residue range), so
the hold-out hashes the id with its own salt. About 20 % of the dev reports are held out: the student
never trains on them, and student-vs-teacher numbers are measured only there.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

SALT = "radedge-report-holdout-v1:"
HOLDOUT_PERCENT = 20


def is_holdout(report_id: str, percent: int = HOLDOUT_PERCENT) -> bool:
    """True when the report belongs to the held-out part (stable across runs, machines and Python versions)."""
    digest = hashlib.sha256((SALT + str(report_id)).encode("utf-8")).hexdigest()
    return int(digest, 16) % 100 < percent


def split_ids(ids: Iterable[str], percent: int = HOLDOUT_PERCENT) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids), each in input order."""
    train: list[str] = []
    held: list[str] = []
    for rid in ids:
        (held if is_holdout(rid, percent) else train).append(rid)
    return train, held
