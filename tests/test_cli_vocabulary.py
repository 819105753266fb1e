"""One CLI vocabulary (DESIGN.md "Command line"): the same option means the same thing in every
command, short forms, `--verbose` anywhere, one-line validation errors with exit 2, one summary prefix."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from tests.dicom_factory import write_image

from radedge.cli import main

REPORTS = ["FINDINGS: Small left pleural effusion. IMPRESSION: No pneumothorax.",
           "INDICATION: rule out pneumonia. FINDINGS: Lungs are clear.",
           "FINDINGS: Cardiomegaly. IMPRESSION: Right lower lobe pneumonia."]


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def one_line_error(r: Result, needle: str) -> None:
    assert r.exit_code == 2, r.output
    assert len(lines(r.output)) == 1 and r.output.startswith("radedge: error: ") and needle in r.output, r.output


def test_txt_file_short_forms_and_verbose_after_the_subcommand(tmp_path: Path) -> None:
    src = tmp_path / "reports.txt"
    src.write_text("\n".join(REPORTS) + "\n", encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    r = cli("label-reports", src, "-o", out, "-m", "rules", "-q", "--verbose")
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["id"] for rec in records] == [1, 2, 3]
    assert records[2]["labels"]["Cardiomegaly"] == 1.0
    assert lines(r.output) == [line for line in lines(r.output) if line.startswith("radedge: ")]
    assert len(lines(r.output)) == 1 and "labelled 3 reports" in r.output  # -q: the summary only


def test_sections_choose_what_is_read(tmp_path: Path) -> None:
    src = tmp_path / "reports.txt"
    src.write_text("\n".join(REPORTS) + "\n", encoding="utf-8")
    labels = {}
    for sections in ("findings,impression", "impression", "all"):
        out = tmp_path / f"{sections}.jsonl"
        r = cli("label-reports", src, "-o", out, "-m", "rules", "-q", "--sections", sections)
        assert r.exit_code == 0, r.output
        labels[sections] = [json.loads(line)["labels"] for line in out.read_text().splitlines()]
    assert labels["findings,impression"][2]["Cardiomegaly"] == 1.0
    assert labels["impression"][2]["Cardiomegaly"] is None  # the finding is only in FINDINGS
    assert labels["impression"][2]["Pneumonia"] == 1.0
    assert labels["findings,impression"][1]["Pneumonia"] is None  # the indication is not read ...
    assert labels["all"][1]["Pneumonia"] is not None  # ... unless every section is


def test_encoding_and_one_pair_of_field_names(tmp_path: Path) -> None:
    src = tmp_path / "export.csv"
    src.write_bytes("study;report\ns1;\"Pleural effusion, d\u00e9j\u00e0 vu.\"\n".replace(";", ",").encode("cp1252"))
    out = tmp_path / "labels.jsonl"
    r = cli("label-reports", src, "-o", out, "-m", "rules", "--text-field", "report", "--id-field", "study",
            "--encoding", "cp1252")
    assert r.exit_code == 0, r.output
    record = json.loads(out.read_text())
    assert record["id"] == "s1" and record["error"] is None and record["labels"]["Pleural Effusion"] == 1.0
    # without --encoding the cp1252 byte is that report's own error, named on stderr; -q hides that line
    loud = cli("label-reports", src, "-o", tmp_path / "a.jsonl", "-m", "rules", "--text-field", "report")
    quiet = cli("label-reports", src, "-o", tmp_path / "b.jsonl", "-m", "rules", "--text-field", "report", "-q")
    assert loud.exit_code == quiet.exit_code == 1
    assert "report 1:" in loud.output and "report 1:" not in quiet.output


def test_validation_is_one_line_and_exit_2(tmp_path: Path, tiny_image_model: Path) -> None:
    src = tmp_path / "reports.txt"
    src.write_text(REPORTS[0] + "\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    one_line_error(cli("label-reports", src, "-o", out, "-m", "rules", "--backend", "tensorrt"), "--model rules")
    one_line_error(cli("label-reports", src, "-o", out, "--sections", "history"), "--sections")
    one_line_error(cli("label-reports", src, "-o", out, "--no-such-option"), "No such option")
    one_line_error(cli("label-reports", src, "-o", out, "-m", "rules", "--encoding", "klingon"), "unknown encoding")
    folder = tmp_path / "dicoms"
    write_image(folder / "a.dcm")
    one_line_error(cli("score-dicoms", folder, "-o", tmp_path / "s.csv", "-m", tiny_image_model, "--views", "PAA"),
                   "unknown view PAA")
    assert not (tmp_path / "s.csv").exists()


def test_device_auto_falls_back_with_one_clean_line(tmp_path: Path, tiny_image_model: Path) -> None:
    folder = tmp_path / "dicoms"
    write_image(folder / "a.dcm")
    r = cli("score-dicoms", folder, "-o", tmp_path / "s.csv", "-m", tiny_image_model, "--device", "auto",
            "--workers", "0", "-q")
    assert r.exit_code == 0, r.output
    assert "UserWarning" not in r.output and ".py:" not in r.output
    assert "radedge: warning: " in r.output or "radedge: " in r.output
    assert all(line.startswith("radedge: ") for line in lines(r.output)), r.output


def test_output_format_and_rules_listed(tmp_path: Path) -> None:
    assert "rules" in cli("models", "list").output.split()
    help_text = cli("label-reports", "-h").output
    assert "'rules'" in help_text and "--input-format" in help_text and "-m, --model" in help_text
    assert "--format " not in help_text and "--text-column" not in help_text  # older spellings stay hidden
    assert "--output-format" in cli("eval", "-h").output
