"""`radedge score-dicoms`: a mixed folder record by record, resume after a kill, the whole corpus."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from tests.outputs import read_records
from tests.paths import need_data
from tests.dicom_factory import make_dataset, ramp, write, write_image, write_raw_dataset, write_sr, write_truncated

from radedge.cli import main
from radedge.pipelines.dicoms import CSV_COLUMNS
from radedge.labels import FINDINGS


def run_cli(*args: str):
    return CliRunner().invoke(main, ["score-dicoms", *args], catch_exceptions=False)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    root = tmp_path / "export"
    write_image(root / "A" / "good1.dcm")
    write_image(root / "A" / "good2", (4095 - ramp()).astype(np.uint16), photometric="MONOCHROME1")
    write_image(root / "A" / "lateral.dcm", view="LL")
    write_image(root / "B" / "hip.dcm", modality="CR", body_part="HIP")
    write_image(root / "B" / "frames.dcm", np.stack([ramp()] * 2))
    write_sr(root / "B" / "report.dcm")
    write_truncated(root / "C" / "cut.dcm")
    write_raw_dataset(root / "C" / "raw.dcm")
    (root / "C" / "empty.dcm").write_bytes(b"")
    (root / "C" / "notes.dcm").write_text("a text file named .dcm\n")
    cv2.imwrite(str(root / "C" / "picture.png"), ramp(top=255, dtype=np.uint8))
    return root


EXPECTED = {
    "A/good1.dcm": ("scored", ""),
    "A/good2": ("scored", ""),
    "A/lateral.dcm": ("skipped", "lateral view"),
    "B/frames.dcm": ("skipped", "multi-frame"),
    "B/hip.dcm": ("skipped", "body part HIP"),
    "B/report.dcm": ("skipped", "no pixel data"),
    "C/cut.dcm": ("error", "cannot be decoded"),
    "C/empty.dcm": ("error", "zero-byte"),
    "C/notes.dcm": ("error", "not a DICOM file"),
    "C/picture.png": ("skipped", "not a DICOM file"),
    "C/raw.dcm": ("error", "no 128-byte preamble"),
}


@pytest.mark.parametrize("suffix,workers", [(".csv", "0"), (".jsonl", "1")])
def test_mixed_folder_record_by_record(tiny_image_model, mixed_folder, tmp_path, suffix, workers):
    out = tmp_path / f"out{suffix}"
    result = run_cli(str(mixed_folder), "-o", str(out), "--model", str(tiny_image_model), "--workers", workers,
                     "--batch-size", "1", "--quiet")
    assert result.exit_code == 1, result.output  # some files failed
    assert "scored 2, skipped 5, failed 4" in result.output
    records = read_records(out)
    assert sorted(r["path"] for r in records) == sorted(EXPECTED)
    for r in records:
        status, reason = EXPECTED[r["path"]]
        assert r["status"] == status and reason in r["reason"], r
        if status == "scored":
            assert r["sop_uid"] and r["study_uid"] and r["series_uid"] and not r["reason"]
            probs = [float(r[f]) for f in FINDINGS] if suffix == ".csv" else list(r["probabilities"].values())
            assert len(probs) == 14 and all(0 <= p <= 1 for p in probs)
        else:
            assert r["error_type"]
            # a readable header names the instance; unreadable files have no UIDs
            assert bool(r["sop_uid"]) == (r["path"] in {"A/lateral.dcm", "B/hip.dcm", "B/frames.dcm",
                                                        "B/report.dcm", "C/cut.dcm"}), r
    text = out.read_text()
    assert "SECRET" not in text  # no patient names or IDs in outputs
    by_path = {r["path"]: r for r in records}
    if suffix == ".csv":
        assert list(records[0]) == CSV_COLUMNS
        assert [by_path["A/good1.dcm"][f] for f in FINDINGS] == [by_path["A/good2"][f] for f in FINDINGS]


def test_clean_folder_exits_0_and_rerun_adds_nothing(tiny_image_model, tmp_path):
    root = tmp_path / "export"
    for i in range(3):
        write_image(root / f"IM{i}.dcm")
    out = tmp_path / "out.csv"
    assert run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0").exit_code == 0
    first = out.read_text()
    again = run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0")
    assert again.exit_code == 0 and out.read_text() == first
    assert "3 records from an earlier run" in again.output
    assert run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0",
                   "--overwrite").exit_code == 0
    assert out.read_text() == first


def test_views_option_scores_laterals(tiny_image_model, tmp_path):
    root = tmp_path / "export"
    write_image(root / "lat.dcm", view="LL")
    out = tmp_path / "out.jsonl"
    assert run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0",
                   "--views", "PA,AP,LL").exit_code == 0
    assert read_records(out)[0]["status"] == "scored"


def test_duplicate_sop_instance_is_scored_once(tiny_image_model, tmp_path):
    root = tmp_path / "export"
    ds = make_dataset(ramp())
    write(ds, root / "a.dcm")
    write(ds, root / "copy" / "a.dcm")
    out = tmp_path / "out.csv"
    run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0")
    records = {r["path"]: r for r in read_records(out)}
    assert records["a.dcm"]["status"] == "scored" and records["copy/a.dcm"]["status"] == "skipped"
    assert "duplicate SOP Instance UID (already scored as a.dcm)" in records["copy/a.dcm"]["reason"]


def test_refuses_output_inside_folder_and_bad_arguments(tiny_image_model, tmp_path):
    root = tmp_path / "export"
    write_image(root / "a.dcm")
    inside = run_cli(str(root), "-o", str(root / "sub" / "out.csv"), "--model", str(tiny_image_model))
    assert inside.exit_code == 2 and "inside" in inside.output
    assert not (root / "sub").exists()
    assert run_cli(str(root), "-o", str(tmp_path / "out.txt"), "--model", str(tiny_image_model)).exit_code == 2
    assert run_cli(str(root), "-o", str(tmp_path / "o.csv"), "--model", str(tmp_path / "none")).exit_code == 2
    assert run_cli(str(tmp_path / "missing"), "-o", str(tmp_path / "o.csv")).exit_code == 2
    (tmp_path / "emptydir").mkdir()
    assert run_cli(str(tmp_path / "emptydir"), "-o", str(tmp_path / "o2.csv"),
                   "--model", str(tiny_image_model)).exit_code == 2


def test_torn_last_record_is_redone(tiny_image_model, tmp_path):
    root = tmp_path / "export"
    for i in range(4):
        write_image(root / f"IM{i}.dcm")
    out = tmp_path / "out.csv"
    run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0")
    full = out.read_text()
    out.write_text(full[: len(full) - 40])  # killed mid-write of the last record
    assert run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "0").exit_code == 0
    assert out.read_text() == full


def test_kill_and_resume(tiny_image_model, tmp_path):
    """Kill the CLI (SIGKILL, workers included) while it writes, rerun: every file exactly once."""
    root = tmp_path / "export"
    n = 150
    for i in range(n):
        write_image(root / f"S{i // 50}" / f"IM{i:04d}.dcm", ramp(256, 256))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "radedge.cli", "score-dicoms", str(root), "-o", str(out),
           "--model", str(tiny_image_model), "--workers", "1", "--batch-size", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # our own session: the CLI and its workers
    proc.wait()
    killed_at = out.read_bytes().count(b"\n")
    assert 0 < killed_at < n, "the run was not interrupted mid-way"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    paths = [r["path"] for r in read_records(out)]
    assert len(paths) == len(set(paths)) == n
    assert all(r["status"] == "scored" for r in read_records(out))


def test_whole_corpus_as_manifest_expects(tiny_image_model, tmp_path):
    from benchmarks.dicom import mismatches, read_manifest

    root = need_data("dicom")
    out = tmp_path / "corpus.csv"
    result = run_cli(str(root), "-o", str(out), "--model", str(tiny_image_model), "--workers", "2", "--quiet")
    assert result.exit_code == 1  # the bad/ files are errors
    records = read_records(out)
    assert mismatches(records, read_manifest(root)) == []
    by_path = {r["path"]: r for r in records}
    twin, original = by_path["pacs_export/STUDY01/SERIES02/IM0001.dcm"], by_path["pacs_export/STUDY01/SERIES01/IM0001.dcm"]
    np.testing.assert_allclose([float(twin[f]) for f in FINDINGS], [float(original[f]) for f in FINDINGS], atol=1e-6)
    assert "EXTREMITY" in by_path["wg04/RG3_J2KR.dcm"]["reason"]


def test_walk_is_sorted_streaming_and_yields_directory_links_unfollowed(tmp_path):
    import types

    from radedge.images.walk import walk_files

    root = tmp_path / "tree"
    for name in ["b/2", "b/10", "a/z", "a/y/x", "c"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "link_to_c").symlink_to(root / "c")
    walk = walk_files(root)
    assert isinstance(walk, types.GeneratorType)
    assert [p.relative_to(root).as_posix() for p in walk] == ["a/y/x", "a/z", "b/10", "b/2", "c", "link_to_c", "loop"]
    assert list(walk_files(root / "c")) == [root / "c"]
    with pytest.raises(FileNotFoundError):
        list(walk_files(root / "missing"))
