"""export.splits: the report hold-out and the image validation split, against known answers (the ids
each split held out before the two helpers became one), and on the shared data the counts the shipped
models' manifests record."""
from __future__ import annotations

import json

from tests.paths import need_data

from export.splits import is_holdout, is_validation, partition, salted_percent, split_ids


def test_report_holdout_known_answers():
    ids = [f"CXR{i}" for i in range(1, 11)]
    assert split_ids(ids) == ([i for i in ids if i not in ("CXR4", "CXR5")], ["CXR4", "CXR5"])
    assert is_holdout("CXR1", percent=100) and not is_holdout("CXR1", percent=0)


def test_image_validation_known_answers():
    patients = [str(i) for i in range(1, 13)]
    assert [p for p in patients if is_validation("nih", p)] == ["5"]
    assert [p for p in patients if is_validation("pediatric", p)] == ["4", "8", "11", "12"]


def test_salts_separate_the_splits():
    assert salted_percent("CXR4", "radedge-report-holdout-v1:") != salted_percent("CXR4", "radedge-image-split-v1:")
    assert partition([1, 2, 3, 4], lambda n: n % 2 == 0) == ([1, 3], [2, 4])


def test_holdout_on_openi_dev_is_the_one_the_manifest_records():
    path = need_data("openi", "reports.jsonl")
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    train, held = split_ids(ids)
    assert (len(ids), len(held)) == (2285, 449)  # models/report-student/manifest.json: "449 reports"
    assert set(train).isdisjoint(held)


def test_image_validation_on_shared_images_is_the_one_the_model_card_records():
    from export.images.data import load_sources, split_by_patient

    samples = load_sources(need_data("images"))
    train, val = split_by_patient(samples)
    assert (len(samples), len(val)) == (1641, 345)  # README accuracy table: "all validation sources | 345"
