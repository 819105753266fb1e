"""radedge.io.readers: streaming (id, report) pairs from CSV, JSONL, .txt folders and Open-i XML."""
from __future__ import annotations

import csv
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from tests.paths import need_data

from radedge.errors import InputError
from radedge.io.readers import ReaderOptions, count_reports, detect_format, openi_text, read_reports
from tests.openi_xml import write_openi


def pairs(path: Path, fmt: str = "auto", **options: str) -> list[tuple]:
    return list(read_reports(path, fmt, ReaderOptions(**options)))


# ---- CSV ---------------------------------------------------------------------------------------
def test_headerless_csv_is_the_chexpert_input_convention(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    long_report = "no pneumothorax. " * 20000  # one cell far beyond the csv module's 128 KiB default
    path.write_bytes(b"\xef\xbb\xbf" + b'First report., not ignored\n"Two lines,\nand a comma."\n\n'
                     + b"bad \xff byte\n" + long_report.encode() + b"\n")
    got = pairs(path)
    assert [rid for rid, _ in got] == [1, 2, 3, 4, 5]
    assert got[0][1] == "First report., not ignored"  # BOM dropped; one column: an unquoted comma joined back
    assert got[1][1] == "Two lines,\nand a comma."
    assert got[2][1] == ""  # a blank line is an empty report; row numbers stay aligned
    assert got[3][1] == b"bad \xff byte"  # invalid UTF-8: the original bytes, for a per-report error
    assert got[4][1] == long_report


def test_csv_with_header_text_and_id_columns(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["study", "report", "site"])
        w.writerow(["s1", "Cardiomegaly.", "A"])
        w.writerow(["s2", "No effusion.", "B"])
    assert pairs(path, text_column="report", id_column="study") == [("s1", "Cardiomegaly."), ("s2", "No effusion.")]
    assert pairs(path, text_column="report") == [(1, "Cardiomegaly."), (2, "No effusion.")]
    with pytest.raises(ValueError, match="no column 'text'"):
        pairs(path, text_column="text")
    with pytest.raises(ValueError, match="--id-field needs --text-field"):
        pairs(path, id_column="study")
    # one pair of names for CSV and JSONL: --text-field / --id-field name a CSV header's columns too
    assert pairs(path, text_field="report", id_field="study") == pairs(path, text_column="report", id_column="study")


# ---- JSONL -------------------------------------------------------------------------------------
def test_jsonl_fields_ids_and_per_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_bytes(b'{"id": "a", "text": "Small effusion."}\n\n'
                     b'{"id": "b", "body": "no text field"}\n'
                     b'{not json\n'
                     b'{"id": "c", "text": "bad \xff byte"}\n'
                     b'[1, 2]\n'
                     b'{"id": "e", "text": 7}\n')
    got = pairs(path)
    assert [rid for rid, _ in got] == ["a", "b", 3, "c", 5, "e"]
    assert got[0][1] == "Small effusion."
    assert isinstance(got[1][1], InputError) and "no field 'text'" in str(got[1][1])
    assert isinstance(got[2][1], InputError) and "not JSON" in str(got[2][1])
    assert got[3][1] == b"bad \xff byte"
    assert isinstance(got[4][1], InputError) and isinstance(got[5][1], InputError)


def test_jsonl_text_field_option_and_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_text('{"report": "One.", "uid": 7}\n{"report": "Two.", "uid": 8}\n', encoding="utf-8")
    assert pairs(path, text_field="report") == [(1, "One."), (2, "Two.")]
    assert pairs(path, text_field="report", id_field="uid") == [(7, "One."), (8, "Two.")]
    with pytest.raises(ValueError, match="pass --text-field"):
        pairs(path)
    with pytest.raises(ValueError, match="--id-field"):
        pairs(path, text_field="report", id_field="nope")
    with pytest.raises(ValueError, match="only apply to CSV"):
        pairs(path, text_column="report")


# ---- folders of .txt ---------------------------------------------------------------------------
def test_txt_folder_sorted_naturally_with_relative_ids_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "10.txt").write_bytes(b"ten")
    (tmp_path / "2.txt").write_bytes(b"two \xff")
    (tmp_path / "b" / "1.txt").write_bytes(b"nested")
    (tmp_path / "notes.md").write_text("not a report")
    got = pairs(tmp_path)
    assert got == [("2.txt", b"two \xff"), ("10.txt", b"ten"), ("b/1.txt", b"nested")]
    assert pairs(tmp_path / "10.txt", "txt") == [(1, "ten")]  # one file: one report per line


def test_txt_file_one_report_per_line_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "reports.txt"
    path.write_bytes("Cardiomegaly.\r\n\nNo pleural effusion, caf\u00e9.\n".encode("cp1252"))
    assert count_reports(path) == 2
    got = pairs(path)  # UTF-8 by default: the cp1252 byte reaches the labeler as bytes (its own error)
    assert got[0] == (1, "Cardiomegaly.") and got[1][0] == 3 and isinstance(got[1][1], bytes)
    assert pairs(path, encoding="cp1252") == [(1, "Cardiomegaly."), (3, "No pleural effusion, caf\u00e9.")]
    with pytest.raises(ValueError, match="unknown encoding"):
        pairs(path, encoding="no-such-codec")


# ---- Open-i XML --------------------------------------------------------------------------------
def test_openi_text_keeps_findings_and_impression_with_headers(tmp_path: Path) -> None:
    path = write_openi(tmp_path, 1, "The heart is normal. No effusion.", "Normal chest.")
    assert openi_text(path.read_bytes()) == "FINDINGS: The heart is normal. No effusion.\n\nIMPRESSION: Normal chest."
    path = write_openi(tmp_path, 2, "", "Cardiomegaly.")
    assert openi_text(path.read_bytes()) == "IMPRESSION: Cardiomegaly."
    with pytest.raises(InputError, match="malformed XML"):
        openi_text(b"<eCitation><Abstract>")


def test_openi_folder_tgz_and_single_file(tmp_path: Path) -> None:
    folder = tmp_path / "ecgen-radiology"
    for n in (10, 2, 1):
        write_openi(folder, n, f"Report {n}.", "Impression.")
    (folder / "3.xml").write_bytes(b"<eCitation><unclosed>")
    got = pairs(folder)
    assert [rid for rid, _ in got] == ["1.xml", "2.xml", "3.xml", "10.xml"]
    assert got[0][1] == "FINDINGS: Report 1.\n\nIMPRESSION: Impression."
    assert isinstance(got[2][1], InputError)
    archive = tmp_path / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="ecgen-radiology")
    from_tar = pairs(archive)
    assert sorted(rid for rid, _ in from_tar) == sorted(f"ecgen-radiology/{rid}" for rid, _ in got)
    assert dict(from_tar)["ecgen-radiology/2.xml"] == dict(got)["2.xml"]
    assert pairs(folder / "2.xml") == [("2.xml", "FINDINGS: Report 2.\n\nIMPRESSION: Impression.")]
    (tmp_path / "broken.tgz").write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="tar"):
        pairs(tmp_path / "broken.tgz")


# ---- formats and streaming ---------------------------------------------------------------------
def test_format_detection_and_bad_inputs(tmp_path: Path) -> None:
    assert detect_format(Path("a.csv")) == "csv" and detect_format(Path("a.JSONL")) == "jsonl"
    assert detect_format(Path("r.tar.gz")) == "xml"
    with pytest.raises(ValueError, match="--input-format"):
        detect_format(tmp_path / "reports.parquet")
    with pytest.raises(ValueError, match="no such file"):
        pairs(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="no .txt or .xml"):
        pairs(tmp_path)
    with pytest.raises(ValueError, match="unknown input format"):
        pairs(tmp_path, "parquet")
    (tmp_path / "x.txt").write_text("report")
    with pytest.raises(ValueError, match="a folder, not a csv file"):
        pairs(tmp_path, "csv")


def test_readers_stream_without_holding_the_input(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    report = "Heart size normal. No focal consolidation, effusion or pneumothorax. " * 8
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        for _ in range(20000):
            w.writerow([report])
    assert path.stat().st_size > 10_000_000
    tracemalloc.start()
    count = sum(1 for _ in read_reports(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 20000
    assert peak < 2_000_000  # a few rows' worth, not the 10 MB file


def test_real_openi_jsonl() -> None:
    path = need_data("openi", "reports.jsonl")
    got = pairs(path, text_field="text")
    assert len(got) == 2285
    assert got[0][0] == "CXR1" and got[0][1].startswith("COMPARISON: None.")
    assert all(isinstance(text, str) for _, text in got)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert got[0][1] == first["text"]
