"""`radedge score-images`: PNG / JPEG folders through the score-dicoms pipeline, on real files."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from tests.outputs import read_records
from tests.paths import need_data

from radedge.cli import main
from radedge.labels import FINDINGS
from radedge.pipelines.dicoms import CSV_COLUMNS


def run_cli(*args: str):
    return CliRunner().invoke(main, ["score-images", *args], catch_exceptions=False)


@pytest.fixture
def picture_folder(tmp_path) -> Path:
    """Three real NIH PNGs (one as JPEG), a truncated PNG, a colour picture, a text file and a DICOM."""
    nih = sorted(need_data("images", "nih", "images").glob("*.png"))[:3]
    root = tmp_path / "pictures"
    (root / "sub").mkdir(parents=True)
    shutil.copy(nih[0], root / "a.png")
    shutil.copy(nih[1], root / "sub" / "b.png")
    cv2.imwrite(str(root / "c.jpg"), cv2.imread(str(nih[2]), cv2.IMREAD_GRAYSCALE))
    (root / "broken.png").write_bytes(nih[0].read_bytes()[:100])
    colour = np.zeros((64, 64, 3), np.uint8)
    colour[..., 2] = 255
    cv2.imwrite(str(root / "colour.png"), colour)
    (root / "notes.txt").write_text("not an image\n")
    shutil.copy(need_data("dicom", "real", "siim_acr_cr_chest_pa_jpeg.dcm"), root / "scan.dcm")
    return root


EXPECTED = {"a.png": "scored", "sub/b.png": "scored", "c.jpg": "scored", "broken.png": "error",
            "colour.png": "error", "notes.txt": "skipped", "scan.dcm": "skipped"}


@pytest.mark.parametrize("suffix,workers", [(".csv", "0"), (".jsonl", "1")])
def test_picture_folder_record_by_record(picture_folder, tmp_path, suffix, workers):
    out = tmp_path / f"out{suffix}"
    result = run_cli(str(picture_folder), "-o", str(out), "--workers", workers, "--quiet")
    assert result.exit_code == 1, result.output  # the truncated PNG and the colour picture failed
    records = read_records(out)
    assert {r["path"]: r["status"] for r in records} == {k: v if v != "scored" else r_status(records, k)
                                                         for k, v in EXPECTED.items()}
    assert "failed 2" in result.output and "skipped 2" in result.output
    by_path = {r["path"]: r for r in records}
    assert "not a PNG / JPEG image" in by_path["notes.txt"]["reason"]
    assert "colour image" in by_path["colour.png"]["reason"]
    for name in ("a.png", "sub/b.png", "c.jpg"):
        r = by_path[name]
        assert r["sop_uid"] == "" and "ood_score" in r
        if r["status"] == "scored":
            probs = r["probabilities"] if suffix == ".jsonl" else {f: r[f] for f in FINDINGS}
            assert any(v not in ("", None) for v in probs.values())
    if suffix == ".csv":
        assert list(records[0]) == CSV_COLUMNS


def r_status(records: list[dict], path: str) -> str:
    """A real chest film is scored, unless the out-of-distribution check flags it (allowed, rare)."""
    status = next(r["status"] for r in records if r["path"] == path)
    assert status in ("scored", "out-of-distribution")
    return status


def test_rerun_resumes_and_clean_folder_exits_0(picture_folder, tmp_path):
    for name in ("broken.png", "colour.png", "notes.txt", "scan.dcm"):
        (picture_folder / name).unlink()
    out = tmp_path / "out.csv"
    assert run_cli(str(picture_folder), "-o", str(out), "--workers", "0", "--quiet").exit_code == 0
    first = out.read_text()
    again = run_cli(str(picture_folder), "-o", str(out), "--workers", "0")
    assert again.exit_code == 0 and out.read_text() == first
    assert "3 records from an earlier run" in again.output


def test_nothing_to_do_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    assert run_cli(str(tmp_path / "empty"), "-o", str(tmp_path / "o.csv")).exit_code == 2
    assert run_cli(str(tmp_path / "missing"), "-o", str(tmp_path / "o.csv")).exit_code == 2
    assert run_cli(str(tmp_path), "-o", str(tmp_path / "o.txt")).exit_code == 2
