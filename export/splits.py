"""The deterministic splits every honest number is measured on: one salted-hash rule, two salts.

- Reports: a hold-out of the Open-i dev reports. `shared/data/openi` already splits Open-i into
  dev / test with sha256(id) % 100 < 60; reusing that hash would make this hold-out a function of the
  dev/test split (all dev ids have the same residue range), so the hold-out hashes the id with its own
  salt. About 20 % of the dev reports are held out: the student never trains on them, and
  student-vs-teacher numbers are measured only there.
- Images: a patient-level validation split of shared/data/images (source and patient id hashed with
  another salt), so every image of a patient lands on the same side.

sha256 keeps both stable across runs, machines and Python versions (`hash()` is salted per process).
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, TypeVar

REPORT_SALT = "radedge-report-holdout-v1:"
HOLDOUT_PERCENT = 20
IMAGE_SALT = "radedge-image-split-v1:"
VAL_PERCENT = 20

T = TypeVar("T")


def salted_percent(key: str, salt: str) -> int:
    """sha256(salt + key) mod 100: where `key` falls on a 0-99 scale that only the salt reshuffles."""
    return int(hashlib.sha256((salt + key).encode("utf-8")).hexdigest(), 16) % 100


def partition(items: Iterable[T], held: Callable[[T], bool]) -> tuple[list[T], list[T]]:
    """(kept, held out), each in input order."""
    kept: list[T] = []
    out: list[T] = []
    for item in items:
        (out if held(item) else kept).append(item)
    return kept, out


def is_holdout(report_id: str, percent: int = HOLDOUT_PERCENT) -> bool:
    """True when the report belongs to the held-out part."""
    return salted_percent(str(report_id), REPORT_SALT) < percent


def split_ids(ids: Iterable[str], percent: int = HOLDOUT_PERCENT) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids), each in input order."""
    return partition(ids, lambda rid: is_holdout(rid, percent))


def is_validation(source: str, patient: str, percent: int = VAL_PERCENT) -> bool:
    """True when the patient's images belong to the image validation split."""
    return salted_percent(f"{source}:{patient}", IMAGE_SALT) < percent
