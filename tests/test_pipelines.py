"""radedge.pipelines: one library call writes exactly what the command writes, and the per-batch steps."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from tests.paths import need_data

from radedge.cli import main
from radedge.images.scorer import ImageScorer
from radedge.pipelines import label_batch, label_file, score_files, score_folder
from radedge.pipelines.reports import ReportSink
from radedge.reports.labeler import ReportLabeler


def test_label_file_writes_what_label_reports_writes(tmp_path: Path) -> None:
    reports = need_data("openi", "reports.jsonl")
    head = tmp_path / "head.jsonl"
    head.write_text("".join(reports.open(encoding="utf-8").readlines()[:40]), encoding="utf-8")
    for suffix in (".csv", ".jsonl"):
        cli_out, lib_out = tmp_path / f"cli{suffix}", tmp_path / f"lib{suffix}"
        result = CliRunner().invoke(main, ["label-reports", str(head), "-o", str(cli_out), "--model", "rules",
                                           "--quiet"])
        assert result.exit_code == 0, result.output
        summary = label_file(head, lib_out, model="rules")
        assert (summary.labelled, summary.failed, summary.resumed, summary.model) == (40, 0, 0, "rules")
        assert lib_out.read_bytes() == cli_out.read_bytes()
        again = label_file(head, lib_out, model="rules")  # a rerun resumes after all 40
        assert (again.labelled, again.resumed) == (0, 40)


def test_label_batch_gives_one_record_per_report() -> None:
    labeler = ReportLabeler.load("rules")
    records, results = label_batch(labeler, ["Small left pleural effusion.", b"\xff\xfe bad"], ["a", "b"],
                                   ReportSink(".jsonl"))
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[0]["labels"]["Pleural Effusion"] == 1.0 and records[0]["error"] is None
    assert records[1]["error"].startswith("ReportDecodeError: not valid UTF-8 at byte 0")
    assert results[1].error == records[1]["error"]


def test_score_folder_writes_what_score_dicoms_writes(tmp_path: Path) -> None:
    folder = need_data("dicom", "real")
    cli_out, lib_out = tmp_path / "cli.csv", tmp_path / "lib.csv"
    result = CliRunner().invoke(main, ["score-dicoms", str(folder), "-o", str(cli_out), "--workers", "0", "--quiet"])
    summary = score_folder(folder, lib_out, workers=0)
    assert result.exit_code == (1 if summary.failed else 0)
    assert summary.scored > 0 and summary.resumed == 0
    assert lib_out.read_bytes() == cli_out.read_bytes()


def test_score_files_is_the_folder_run_per_batch(tmp_path: Path) -> None:
    folder = need_data("dicom", "real")
    out = tmp_path / "lib.jsonl"
    score_folder(folder, out, workers=0)
    expected = [json.loads(line) for line in out.read_text().splitlines()]
    names = [record["path"] for record in expected]
    records = score_files(ImageScorer.load("default"), [folder / name for name in names], names=names)
    assert records == expected
