"""benchmarks/cluster.py's bookkeeping (no timing asserted: the figures come from the command):
the per-workload verdict lines and the label-cell agreement it prints, and its options."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cluster import agreement, estimate, verdicts


def _workload() -> dict:
    def row(mode: str, wall: float, steady: float) -> dict:
        return {"mode": mode, "median_s": wall, "wall_vs_plain": wall / 100.0, "steady_vs_plain": steady}

    return {"rows": [row("plain CLI", 100.0, 1.0), row("ray 1 worker", 110.0, 1.02), row("ray 2 workers", 120.0, 0.9)]}


def test_verdicts_judge_each_ray_total_with_and_without_ray_init():
    one, two = verdicts(_workload(), ray_init_s=10.0)
    # 1 worker: 1.10x alone (met), 1.20x with ray.init (missed)
    assert one.startswith("ray 1 worker: total 1.100x plain (met), with ray.init 1.200x (missed), steady 1.020x")
    # 2 workers: 1.20x alone: missed, though its steady state is faster than the plain CLI
    assert two.startswith("ray 2 workers: total 1.200x plain (missed), with ray.init 1.300x (missed), steady 0.900x")
    assert one.endswith("target <= 1.15")


def test_verdicts_target_is_inclusive_and_adjustable():
    lines = verdicts(_workload(), ray_init_s=0.0, target=1.2)
    assert "total 1.200x plain (met)" in lines[1]
    assert "total 1.100x plain (met), with ray.init 1.100x (met)" in lines[0]


def test_agreement_counts_cells_and_catches_duplicates_and_gaps():
    plain = [{"id": "a", "labels": {"Edema": 1.0, "Mass": 0.0}}, {"id": "b", "labels": {"Edema": -1.0}}]
    shuffled = [plain[1], {"id": "a", "labels": {"Edema": 1.0, "Mass": 0.0}}]
    same = agreement(plain, shuffled, "id")
    assert same["exactly_once"] and same["label_cells"] == 3 and same["identical_share"] == 1.0
    moved = agreement(plain, [{"id": "a", "labels": {"Edema": 1.0}}, {"id": "b", "labels": {"Edema": -1.0}}], "id")
    assert moved["label_cells_identical"] == 2 and moved["identical_share"] == round(2 / 3, 5)
    twice = agreement(plain, [{"id": "a", "labels": plain[0]["labels"]}] * 2 + [{"id": "b", "labels": {}}], "id")
    assert not twice["exactly_once"]
    gap = agreement(plain, [{"id": "a", "labels": plain[0]["labels"]}], "id")
    assert not gap["exactly_once"] and gap["items_ray"] == 1


def test_archive_kinds_and_ray_workers_are_checked(capsys):
    from benchmarks.cluster import main

    for argv in (["--archive-kinds", "jpeg,bogus"], ["--ray-workers", "0"], ["--ray-workers", "two"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "bogus" in capsys.readouterr().err


def test_archive_copies_only_the_kinds_asked_for(tmp_path, monkeypatch):
    import benchmarks.dicom as dicom
    from benchmarks.cluster import _archive

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.dcm").write_bytes(b"x")
    copied: list[list[Path]] = []
    kinds = {k: [tmp_path / f"{k}.dcm"] for k in dicom.KINDS}
    monkeypatch.setattr(dicom, "fullsize_folder", lambda: kinds)
    monkeypatch.setattr(dicom, "copies_folder", lambda files, copies, root: copied.append(list(files)))
    _archive(corpus, 3, tmp_path / "one", ["jpeg", "j2k-lossy"])
    _archive(corpus, 3, tmp_path / "all")
    assert copied == [[kinds["j2k-lossy"][0], kinds["jpeg"][0]], [kinds[k][0] for k in dicom.KINDS]]


def test_estimate_takes_the_efficiency_of_the_last_ray_mode_run(monkeypatch):
    import benchmarks.cluster as cluster

    monkeypatch.setattr(cluster, "_recorded_per_core", lambda: {"w": [("w", 10.0)]})
    both = {"workload": "w", "rows": _workload()["rows"]}
    one = {"workload": "w", "rows": _workload()["rows"][:2]}  # --ray-workers 1: no 2-worker row
    assert estimate([both], nodes=(1,), cores=1)[0]["ray_efficiency"] == round(100 / 120, 3)
    assert estimate([one], nodes=(1,), cores=1)[0]["ray_efficiency"] == round(100 / 110, 3)
