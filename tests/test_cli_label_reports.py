"""`radedge label-reports`: mixed inputs row by row, resume, bad arguments, real Open-i files."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from tests.paths import need_data

from radedge.cli import main
from radedge.pipelines.reports import CSV_COLUMNS
from radedge.io.records import meta_path
from radedge.labels import FINDINGS
from radedge.reports.labeler import ReportLabeler
from tests.openi_xml import OPENI_XML

LONG_WORDS = 20000


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["label-reports", *map(str, args)])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_COLUMNS
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Good reports, an empty one, a 20,000-word one, and one that is not UTF-8 (Latin-1)."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "1.txt").write_bytes(b"FINDINGS: Small left pleural effusion. No pneumothorax.")
    (folder / "2.txt").write_bytes(b"")
    long_text = "FINDINGS: " + "The lungs are clear. " * (LONG_WORDS // 4) + "There is cardiomegaly."
    assert len(long_text.split()) > LONG_WORDS
    (folder / "3.txt").write_bytes(long_text.encode())
    (folder / "4.txt").write_bytes("Pleural effusion, d\u00e9j\u00e0 vu.".encode("latin-1"))
    (folder / "5.txt").write_bytes(b"IMPRESSION: Possible right lower lobe pneumonia.")
    return folder


# ---- mixed input, row by row -------------------------------------------------------------------
def test_mixed_folder_to_csv_row_by_row(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    r = run(mixed_folder, "-o", out, "--model", "rules")
    assert r.exit_code == 1, r.output
    rows = read_csv(out)
    assert len(rows) == 5
    good, empty, long, latin1, hedged = rows
    assert good["Pleural Effusion"] == "1.0" and good["Pneumothorax"] == "0.0" and good["Error"] == ""
    assert good["Reports"] == "FINDINGS: Small left pleural effusion. No pneumothorax."
    assert all(empty[f] == "" for f in FINDINGS) and empty["Error"] == "" and empty["Reports"] == ""
    assert long["Cardiomegaly"] == "1.0" and long["Error"] == "" and len(long["Reports"].split()) > LONG_WORDS
    assert all(latin1[f] == "" for f in FINDINGS)
    assert latin1["Error"].startswith("ReportDecodeError: not valid UTF-8")
    assert latin1["Reports"] == "Pleural effusion, d\ufffdj\ufffd vu."
    assert hedged["Pneumonia"] == "-1.0" and hedged["No Finding"] == ""
    labelled = [{f: row[f] for f in FINDINGS if row[f]} for row in rows]  # every non-blank cell, row by row
    assert labelled == [{"Pleural Effusion": "1.0", "Pneumothorax": "0.0"}, {}, {"Cardiomegaly": "1.0"}, {},
                        {"Pneumonia": "-1.0"}]
    assert "4.txt: ReportDecodeError" in r.stderr
    assert "labelled 5 reports (1 failed)" in r.stderr


def test_mixed_folder_to_jsonl_with_an_onnx_model(mixed_folder: Path, tiny_report_model: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    r = run(mixed_folder, "-o", out, "--model", tiny_report_model, "--batch-size", "8", "--quiet")
    assert r.exit_code == 1, r.output
    records = read_jsonl(out)
    assert [rec["id"] for rec in records] == ["1.txt", "2.txt", "3.txt", "4.txt", "5.txt"]
    for rec in records:
        assert list(rec["labels"]) == list(FINDINGS) and list(rec["probs"]) == list(FINDINGS)
        assert all(abs(sum(p) - 1) < 1e-3 for p in rec["probs"].values())
        assert all(-1 < v < 1 for v in rec["rates"].values())
    assert records[2]["error"] is None and any(v is not None for v in records[2]["labels"].values())
    assert set(records[1]["labels"].values()) == {None} and records[1]["error"] is None
    assert records[3]["error"].startswith("ReportDecodeError") and set(records[3]["labels"].values()) == {None}
    # The CLI writes what the Python API returns.
    texts = [(mixed_folder / f"{i}.txt").read_bytes() for i in (1, 3, 5)]
    api = ReportLabeler.load(tiny_report_model, batch_size=8)(texts)
    for rec, res in zip([records[0], records[2], records[4]], api):
        assert rec["labels"] == res.labels
        assert np.allclose([rec["probs"][f] for f in FINDINGS], res.probs, atol=1e-4)
    assert "reports/s]" not in r.stderr  # --quiet: no progress bar
    assert "labelled 5 reports (1 failed)" in r.stderr  # the summary stays


def test_raw_csv_written_with_bytes(tmp_path: Path) -> None:
    src = tmp_path / "reports.csv"
    src.write_bytes(b'"Cardiomegaly. Mild pulmonary edema."\n'
                    b'"No pneumothorax, \xff\xfe effusion."\n'
                    b'""\n'
                    b'"Line one.\r\nLine two: no effusion."\n')
    out = tmp_path / "labels.csv"
    r = run(src, "-o", out, "--model", "rules")
    assert r.exit_code == 1, r.output
    rows = read_csv(out)
    assert [row["Error"].split(":")[0] for row in rows] == ["", "ReportDecodeError", "", ""]
    assert rows[0]["Cardiomegaly"] == "1.0" and rows[0]["Edema"] == "1.0"
    assert rows[3]["Reports"] == "Line one.\r\nLine two: no effusion." and rows[3]["Pleural Effusion"] == "0.0"


# ---- resume --------------------------------------------------------------------------------------
def write_reports_csv(path: Path, n: int, offset: int = 0) -> None:
    kinds = ["Small left pleural effusion, case {i}.", "No acute process, case {i}.",
             "Possible pneumonia\nnear the base, case {i}.", "",
             "Line one.\r\nNo effusion,\u2028case {i}\x85."]  # CR LF and Unicode line breaks in a cell
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        for i in range(offset, offset + n):
            w.writerow([kinds[i % len(kinds)].format(i=i)])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "reports.csv"
    write_reports_csv(src, 700)  # more than one chunk of 256
    full = tmp_path / f"full{suffix}"
    assert run(src, "-o", full, "--model", "rules", "--quiet").exit_code == 0
    whole = full.read_bytes()
    # Killed mid-record after k complete records: early, late, and inside the first record (or header).
    for k, torn in ((231, 25), (699, 5), (0, 40)):  # records 232 and 700 are longer than their torn part
        prefix = b""
        if k:  # the first k records, as a run over only the first k reports writes them
            write_reports_csv(tmp_path / "first.csv", k)
            assert run(tmp_path / "first.csv", "-o", tmp_path / f"head{suffix}", "--model", "rules", "--quiet",
                       "--overwrite").exit_code == 0
            prefix = (tmp_path / f"head{suffix}").read_bytes()
        assert whole.startswith(prefix)
        part = tmp_path / f"part{suffix}"
        part.write_bytes(whole[:len(prefix) + torn])
        meta_path(part).write_bytes(meta_path(full).read_bytes())  # the killed run had started this output
        r = run(src, "-o", part, "--model", "rules", "--quiet")
        assert r.exit_code == 0, r.output
        assert part.read_bytes() == whole  # no record lost, none written twice
        again = f", {k} already in the output" if k else ""
        assert f"labelled {700 - k} reports (0 failed{again}) with rules" in r.stderr
    r = run(src, "-o", full, "--model", "rules", "--quiet")  # finished: nothing left to do
    assert r.exit_code == 0 and "labelled 0 reports" in r.stderr and full.read_bytes() == whole


def test_resume_refuses_an_output_of_another_input(tmp_path: Path) -> None:
    src, other = tmp_path / "a.csv", tmp_path / "b.csv"
    write_reports_csv(src, 20)
    write_reports_csv(other, 20, offset=100)
    out = tmp_path / "labels.csv"
    assert run(src, "-o", out, "--model", "rules", "--quiet").exit_code == 0
    before = out.read_bytes()
    r = run(other, "-o", out, "--model", "rules", "--quiet")
    assert r.exit_code == 2 and "another input" in r.stderr
    assert out.read_bytes() == before
    r = run(other, "-o", out, "--model", "rules", "--quiet", "--overwrite")
    assert r.exit_code == 0 and len(read_csv(out)) == 20 and out.read_bytes() != before
    write_reports_csv(other, 5, offset=100)  # the same input, cut short
    r = run(other, "-o", out, "--model", "rules", "--quiet")
    assert r.exit_code == 2 and "another input" in r.stderr  # OUTPUT.meta.json: the input file changed


def test_rerun_still_reports_earlier_failures(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    assert run(mixed_folder, "-o", out, "--model", "rules").exit_code == 1
    assert run(mixed_folder, "-o", out, "--model", "rules").exit_code == 1  # the output still has one


# ---- bad arguments: exit 2, nothing written -----------------------------------------------------
def test_bad_arguments_exit_2(tmp_path: Path, tiny_report_model: Path) -> None:
    src = tmp_path / "reports.csv"
    write_reports_csv(src, 3)
    jsonl = tmp_path / "reports.jsonl"
    jsonl.write_text('{"id": 1, "body": "x"}\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    cases = [
        ([src], "Missing option"),
        ([tmp_path / "missing.csv", "-o", out], "no such file"),
        ([src, "-o", tmp_path / "out.txt"], "must end in .csv or .jsonl"),
        ([src, "-o", out, "--model", "no-such-model"], "no model named"),
        ([src, "-o", out, "--text-field", "text"], "no column 'text'"),
            ([src, "-o", out, "--views", "PA"], "No such option"),
        ([src, "-o", out, "--text-column", "report"], "no column 'report'"),
        ([jsonl, "-o", out], "pass --text-field"),
        ([src, "-o", out, "--batch-size", "0"], "batch-size"),
        ([src, "-o", out, "--format", "parquet"], "format"),
        ([tmp_path / "reports.parquet", "-o", out], "no such file"),
        ([src, "-o", src], "the output is the input"),
    ]
    for args, message in cases:
        r = run(*args, *([] if "--model" in map(str, args) else ["--model", "rules"]))
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
        assert not out.exists()


def test_broken_model_or_absent_device_exit_2(tmp_path: Path, tiny_report_model: Path) -> None:
    import onnxruntime as ort

    src = tmp_path / "reports.csv"
    write_reports_csv(src, 3)
    out = tmp_path / "out.csv"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        r = run(src, "-o", out, "--model", tiny_report_model, "--device", "cuda")
        assert r.exit_code == 2 and "CUDAExecutionProvider" in r.stderr
    with open(tiny_report_model / "model.onnx", "ab") as f:
        f.write(b"tampered")
    r = run(src, "-o", out, "--model", tiny_report_model)
    assert r.exit_code == 2 and "sha256" in r.stderr
    assert not out.exists()


# ---- real files (Open-i) -------------------------------------------------------------------------
def test_openi_jsonl_to_csv_through_the_installed_command(tmp_path: Path) -> None:
    src = need_data("openi", "reports.jsonl")
    out = tmp_path / "openi.csv"
    proc = subprocess.run([sys.executable, "-m", "radedge.cli", "label-reports", str(src), "--text-field", "text",
                           "-o", str(out), "--model", "rules"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "labelled 2285 reports (0 failed)" in proc.stderr
    rows = read_csv(out)
    records = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    assert [row["Reports"] for row in rows] == [rec["text"] for rec in records]
    api = ReportLabeler.load("rules")([rec["text"] for rec in records[:200]])
    for row, res in zip(rows, api):
        assert [row[f] for f in FINDINGS] == ["" if v is None else f"{v:.1f}" for v in res.labels.values()]
    cxr1 = rows[0]
    assert cxr1["No Finding"] == "1.0" and cxr1["Pneumothorax"] == "0.0"
    empty = [row for row, rec in zip(rows, records) if not rec["text"]]
    assert len(empty) == 17 and all(row[f] == "" for row in empty for f in FINDINGS)


def test_openi_headered_csv_and_xml_archive(tmp_path: Path) -> None:
    src = need_data("openi", "reports.jsonl")
    records = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()[:60]]
    table = tmp_path / "openi.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["uid", "findings", "impression", "report"])
        for rec in records:
            w.writerow([rec["id"], rec["findings"], rec["impression"], rec["text"]])
    out = tmp_path / "openi.jsonl"
    r = run(table, "-o", out, "--model", "rules", "--text-column", "report", "--id-column", "uid")
    assert r.exit_code == 0, r.output
    from_csv = read_jsonl(out)
    assert [rec["id"] for rec in from_csv] == [rec["id"] for rec in records]
    # The same reports as Open-i XML files in a .tgz: FINDINGS + IMPRESSION give the same labels.
    archive = tmp_path / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for rec in records:
            data = OPENI_XML.format(n=rec["uid"], findings=_xml_escape(rec["findings"]),
                                    impression=_xml_escape(rec["impression"])).encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{rec['uid']}.xml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out_xml = tmp_path / "openi-xml.jsonl"
    r = run(archive, "-o", out_xml, "--model", "rules")
    assert r.exit_code == 0, r.output
    from_xml = read_jsonl(out_xml)
    assert [rec["id"] for rec in from_xml] == [f"ecgen-radiology/{rec['uid']}.xml" for rec in records]
    assert [rec["labels"] for rec in from_xml] == [rec["labels"] for rec in from_csv]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_output_folder_is_created(tmp_path: Path, mixed_folder: Path) -> None:
    (mixed_folder / "3.txt").unlink()
    out = tmp_path / "new" / "dir" / "labels.csv"
    assert run(mixed_folder, "-o", out, "--model", "rules", "--quiet").exit_code == 1
    assert out.is_file()


def test_jsonl_records_carry_evidence_into_the_text_as_read(tmp_path: Path) -> None:
    """JSONL records gain `evidence` (report offsets, through sections, CRLF and non-ASCII text);
    the CSV keeps exactly the CheXpert columns."""
    texts = ["INDICATION: r/o pneumonia\r\nFINDINGS: Caf\u00e9 \u0130\u0130 stable. No pneumothorax.\r\n"
             "Small left pleural effusion.\r\n\r\nIMPRESSION: Possible edema.",
             "FINDINGS: The lungs are clear.\nIMPRESSION: Normal chest."]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = run(src, "--text-field", "text", "-o", out, "--model", "rules")
    assert r.exit_code == 0, r.output
    first, second = read_jsonl(out)
    ev = {f: [texts[0][s:e] for s, e in spans] for f, spans in first["evidence"].items()}
    assert ev == {"Edema": ["Possible", "edema"], "Pneumothorax": ["No", "pneumothorax"],
                  "Pleural Effusion": ["effusion"]}
    assert [texts[1][s:e] for s, e in second["evidence"]["No Finding"]] == ["The lungs are clear.", "Normal chest."]
    csv_out = tmp_path / "out.csv"
    assert run(src, "--text-field", "text", "-o", csv_out, "--model", "rules").exit_code == 0
    assert list(read_csv(csv_out)[0]) == CSV_COLUMNS
