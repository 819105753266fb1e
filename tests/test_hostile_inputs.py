"""Hostile inputs (issue 13): each cause of a crash, hang, silent wrong result or mixed output, one
test per cause, through the layer that owns it. The error contract they hold is README's
"The error contract": one record per input item, a bad item is its own error, other items are
unaffected, only regular files are opened, caps bound memory, only verified models load."""
from __future__ import annotations

import codecs
import csv
import io
import json
import os
import signal
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from click.testing import CliRunner
from tests.dicom_factory import make_dataset, ramp, write, write_compressed, write_image
from tests.tiny_models import rewrite_manifest

from radedge import ImageScorer, ReportLabeler, registry
from radedge.cli import main
from radedge.errors import ChecksumError, InputError, ManifestError
from radedge.io.readers import ReaderOptions, read_reports
from radedge.io.records import RecordWriter, meta_path
from radedge.io.walk import walk_entries
from radedge.manifest import Manifest


@contextmanager
def deadline(seconds: int = 20) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""
    def expire(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pairs(path: Path, fmt: str = "auto", **options) -> list[tuple]:
    with deadline():
        return list(read_reports(path, fmt, ReaderOptions(**options)))


def label(*args: str | Path):
    return CliRunner().invoke(main, ["label-reports", *map(str, args)])


# ---- text that is not UTF-8, or not text ------------------------------------------------------------
def test_lone_surrogate_in_jsonl_is_that_records_error(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "Edema."}\n{"id": "b\\ud83d", "text": "x \\ud83d y"}\n'
                   '{"id": "c", "text": "No effusion."}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = label(src, "-o", out, "--model", "rules", "--quiet")
    assert r.exit_code == 1, r.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [rec["id"] for rec in records] == ["a", "b\\ud83d", "c"]
    assert records[1]["error"].startswith("ReportDecodeError") and records[2]["error"] is None
    assert label(src, "-o", out, "--model", "rules", "--quiet").exit_code == 1  # the rerun resumes, too


def test_latin1_file_names_in_a_txt_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.txt").write_text("Edema.")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as f:
        f.write(b"No pneumothorax.")
    out = tmp_path / "out.csv"
    r = label(folder, "-o", out, "--model", "rules", "--quiet", "--format", "txt")
    assert r.exit_code == 0, r.output
    assert [rid for rid, _ in pairs(folder, "txt")] == ["a.txt", "caf\\xe9.txt"]
    assert label(folder, "-o", tmp_path / "out.jsonl", "--model", "rules", "--quiet").exit_code == 0


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_csv_with_a_bom_are_read_as_text(tmp_path: Path, codec: str) -> None:
    src = tmp_path / "in.csv"
    bom = {"utf-16": b"", "utf-16-be": codecs.BOM_UTF16_BE, "utf-32": b""}[codec]
    src.write_bytes(bom + "Edema.\nNo effusion.\n".encode(codec))
    assert [text for _, text in pairs(src)] == ["Edema.", "No effusion."]
    labeler = ReportLabeler.load("rules")
    assert labeler("Edema.".encode("utf-16")).labels["Edema"] == 1.0  # bytes with a BOM, through the API


def test_headerless_csv_keeps_text_after_an_unquoted_comma(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Heart size normal, large right pneumothorax.\nEdema.\n")
    got = pairs(src)
    assert got == [(1, "Heart size normal, large right pneumothorax."), (2, "Edema.")]
    result = ReportLabeler.load("rules")(got[0][1])
    assert result.labels["Pneumothorax"] == 1.0  # the text after the comma was read


@pytest.mark.parametrize("header", ["Report Impression", "Reports", "report"])
def test_a_report_column_header_is_detected(tmp_path: Path, header: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"{header}\nEdema.\nNo effusion.\n")
    assert pairs(src) == [(1, "Edema."), (2, "No effusion.")]
    src.write_text(f"id,{header}\nr1,Edema.\n")
    assert pairs(src) == [(1, "Edema.")]


def test_deeply_nested_json_and_huge_numbers_are_line_errors(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "Edema."}\n' + "[" * 100000 + "]" * 100000 + "\n"
                   + '{"text": "x", "n": ' + "9" * 5000 + "}\n" + '{"text": "No effusion."}\n')
    got = pairs(src)
    assert [type(r).__name__ for _, r in got] == ["str", "InputError", "InputError", "str"]
    assert "nested too deeply" in str(got[1][1])


# ---- caps: one record never costs unbounded memory ----------------------------------------------------
def test_a_report_over_the_cap_is_its_own_error(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Edema.\n" + "A" * 5000 + "\nNo effusion.\n")
    out = tmp_path / "out.jsonl"
    r = label(src, "-o", out, "--model", "rules", "--quiet", "--max-report-chars", "1000")
    assert r.exit_code == 1, r.output
    errors = [json.loads(line)["error"] for line in out.read_text().splitlines()]
    assert errors[0] is None and "cap" in errors[1] and errors[2] is None
    assert "cap" in ReportLabeler.load("rules", max_report_chars=10)("x" * 11).error


def test_oversized_lines_are_skipped_without_reading_them_whole(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "Edema."}\n{"text": "' + "b" * 200000 + '"}\n{"text": "No effusion."}\n')
    got = pairs(src, max_report_chars=1000)
    assert got[0][1] == "Edema." and isinstance(got[1][1], InputError) and got[2][1] == "No effusion."
    csv_src = tmp_path / "in.csv"
    csv_src.write_text("Edema.\n" + "b" * 200000 + "\nNo effusion.\n")
    got = pairs(csv_src, max_report_chars=1000)
    assert got[0] == (1, "Edema.") and isinstance(got[1][1], InputError) and got[2] == (3, "No effusion.")


def _tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_truncated_archive_keeps_what_was_read_and_ends_with_an_error(tmp_path: Path) -> None:
    xml = b'<r><AbstractText Label="FINDINGS">Edema.</AbstractText></r>'
    noise = [os.urandom(3000).hex().encode() for _ in range(5)]  # incompressible: the cut lands mid-archive
    whole = _tar_with(tmp_path / "a.tgz", {f"{i}.xml": xml + b"<!--" + noise[i - 1] + b"-->" for i in range(1, 6)})
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    got = pairs(cut)
    assert len(got) >= 2 and isinstance(got[-1][1], InputError)  # the tear: the member it cut, or the archive
    assert all(text == "FINDINGS: Edema." for _, text in got[:-1])
    out = tmp_path / "out.csv"
    assert label(cut, "-o", out, "--model", "rules", "--quiet").exit_code == 1


def test_archive_member_over_the_cap_is_not_read(tmp_path: Path) -> None:
    xml = b'<r><AbstractText Label="FINDINGS">Edema.</AbstractText></r>'
    archive = _tar_with(tmp_path / "a.tgz", {"1.xml": xml, "big.xml": b"<r>" + b" " * 300000 + b"</r>", "2.xml": xml})
    got = pairs(archive, max_member_bytes=100000)
    assert [rid for rid, _ in got] == ["1.xml", "big.xml", "2.xml"]
    assert "cap" in str(got[1][1]) and got[2][1] == "FINDINGS: Edema."


# ---- only regular files are opened; nothing is dropped without a record --------------------------------
def test_fifo_device_and_dangling_link_in_a_txt_folder_are_error_records(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "1.txt").write_text("Edema.")
    os.mkfifo(folder / "2.txt")
    (folder / "3.txt").symlink_to("/dev/null")
    (folder / "4.txt").symlink_to(folder / "missing")
    (folder / "5.txt").mkdir()  # a folder named like a report: walked into, holds nothing
    (folder / "6.txt").write_text("No effusion.")
    got = pairs(folder, "txt")
    assert [rid for rid, _ in got] == ["1.txt", "2.txt", "3.txt", "4.txt", "6.txt"]
    assert [type(r).__name__ for _, r in got] == ["bytes", "NotRegularFileError", "NotRegularFileError",
                                                 "NotRegularFileError", "bytes"]
    assert "FIFO" in str(got[1][1]) and "character device" in str(got[2][1])


def test_input_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    os.mkfifo(src)
    with deadline():
        r = label(src, "-o", tmp_path / "out.csv", "--model", "rules", "--quiet")
    assert r.exit_code == 2 and "FIFO" in r.output


def test_unlistable_subfolder_is_an_error_record(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "reports"
    (folder / "locked").mkdir(parents=True)
    (folder / "1.txt").write_text("Edema.")
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    got = pairs(folder, "txt")
    assert got[0][0] == "1.txt" and got[1][0] == "locked" and "Permission denied" in str(got[1][1])
    assert [e.error is not None for e in walk_entries(folder)] == [False, True]


def test_a_folder_1100_deep_is_walked_without_recursion(tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    path = deep
    deep.mkdir()
    try:
        for _ in range(1100):  # one level at a time: pathlib's own mkdir(parents=True) recurses
            path = path / "d"
            path.mkdir()
        (path / "x.txt").write_text("Edema.")
        assert [e.path.name for e in walk_entries(deep)] == ["x.txt"]
        assert len(pairs(deep, "txt")) == 1
    finally:  # shutil.rmtree (pytest's clean-up) recurses, and would fail at this depth
        (path / "x.txt").unlink(missing_ok=True)
        while path != tmp_path:
            path.rmdir()
            path = path.parent


# ---- outputs: CR in cells, torn UTF-8, streaming resume, links, what made them ----------------------------
def test_a_bare_cr_in_a_cell_is_quoted(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with RecordWriter(out, ["a", "b"], resume=False) as w:
        w.write({"a": "one\rtwo", "b": "x"})
        w.write({"a": "three", "b": "y"})
    with open(out, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["a", "b"], ["one\rtwo", "x"], ["three", "y"]]
    with RecordWriter(out, ["a", "b"], resume=True) as w:
        assert [r["a"] for r in w.existing] == ["one\rtwo", "three"]


def test_resume_after_a_tear_inside_a_utf8_character(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with RecordWriter(out, resume=False) as w:
        w.write({"id": 1, "text": "d\u00e9j\u00e0"})
    with open(out, "ab") as f:
        f.write('{"id": 2, "text": "d\u00e9'.encode()[:-1])  # the disk filled up mid-character
    with RecordWriter(out, resume=True) as w:
        assert [r["id"] for r in w.existing] == [1]


def test_resume_streams_the_old_output(tmp_path: Path) -> None:
    import tracemalloc

    out = tmp_path / "out.jsonl"
    with RecordWriter(out, resume=False) as w:
        for i in range(20000):
            w.write({"id": i, "text": "x" * 200})
    tracemalloc.start()
    with RecordWriter(out, resume=True) as w:
        assert len(w.existing) == 20000 and sum(1 for _ in w.existing) == 20000
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < out.stat().st_size / 4, (peak, out.stat().st_size)


@pytest.mark.parametrize("target", ["/dev/full", "fifo", "folder"])
def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path: Path, target: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Edema.\n")
    out = tmp_path / "out.csv"
    if target == "fifo":
        os.mkfifo(out)
    elif target == "folder":
        (tmp_path / "dir").mkdir()
        out.symlink_to(tmp_path / "dir")
    else:
        out.symlink_to(target)
    with deadline():
        r = label(src, "-o", out, "--model", "rules", "--quiet")
    assert r.exit_code == 2 and ("not a regular file" in r.output or "is a directory" in r.output)


def test_overwrite_never_destroys_another_hard_link_of_the_output(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Edema.\nNo effusion.\n")
    out = tmp_path / "out.csv"
    os.link(src, out)
    r = label(src, "-o", out, "--model", "rules", "--quiet", "--overwrite")
    assert r.exit_code == 2 and "input" in r.output
    assert src.read_text() == "Edema.\nNo effusion.\n"
    other = tmp_path / "elsewhere.csv"
    other.write_text("precious\n")
    os.link(other, tmp_path / "out2.csv")
    assert label(src, "-o", tmp_path / "out2.csv", "--model", "rules", "--quiet").exit_code == 2  # no append
    assert label(src, "-o", tmp_path / "out2.csv", "--model", "rules", "--quiet", "--overwrite").exit_code == 0
    assert other.read_text() == "precious\n"


def test_record_writer_refuses_to_resume_what_other_settings_made(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with RecordWriter(out, resume=True, meta={"input": "A", "model": "m1"}) as w:
        w.write({"id": 1})
    assert json.loads(meta_path(out).read_text()) == {"input": "A", "model": "m1"}
    with pytest.raises(ValueError, match="another input"):
        RecordWriter(out, resume=True, meta={"input": "B", "model": "m1"})
    with RecordWriter(out, resume=True, meta={"input": "A", "model": "m1"}) as w:
        assert len(w.existing) == 1
    meta_path(out).unlink()
    with pytest.raises(ValueError, match="meta.json"):
        RecordWriter(out, resume=True, meta={"input": "A", "model": "m1"})


# ---- models: only verified files from the search path -------------------------------------------------
def test_a_folder_in_the_working_directory_does_not_shadow_a_model(tiny_image_model: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_image_model.parent))
    fake = tmp_path / "cwd" / "tiny-image"
    fake.parent.mkdir()
    import shutil

    shutil.copytree(tiny_image_model, fake)
    monkeypatch.chdir(fake.parent)
    assert registry.resolve("tiny-image", "image-findings") == tiny_image_model
    assert registry.resolve("./tiny-image", "image-findings") == Path("./tiny-image")


def test_an_edited_manifest_does_not_load_and_fails_verify(tiny_image_model: Path, monkeypatch) -> None:
    data = json.loads((tiny_image_model / "manifest.json").read_text())
    data["thresholds"] = {k: 1.01 for k in data["thresholds"]}
    (tiny_image_model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="edited"):
        registry.open_model(tiny_image_model, "image-findings")
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_image_model.parent))
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_image_model)])
    assert r.exit_code == 2 and "FAILED" in r.output
    (tiny_image_model / "manifest.sha256").unlink()
    with pytest.raises(ManifestError, match="manifest.sha256"):
        Manifest.read(tiny_image_model)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../model.onnx"])
def test_manifest_files_must_stay_inside_the_folder(tiny_image_model: Path, name: str) -> None:
    data = json.loads((tiny_image_model / "manifest.json").read_text())
    data["files"][name] = "0" * 64
    rewrite_manifest(tiny_image_model, data)
    with pytest.raises(ManifestError, match="inside the model folder|relative"):
        Manifest.read(tiny_image_model)


def test_a_link_out_of_the_model_folder_is_refused(tiny_image_model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    (tiny_image_model / "model.onnx").rename(outside)
    (tiny_image_model / "model.onnx").symlink_to(outside)
    with pytest.raises(ChecksumError, match="out of the model folder"):
        registry.open_model(tiny_image_model, "image-findings")


def test_the_tokenizer_must_be_a_verified_file(tiny_report_model: Path, tmp_path: Path) -> None:
    data = json.loads((tiny_report_model / "manifest.json").read_text())
    elsewhere = tmp_path / "tok.json"
    elsewhere.write_bytes((tiny_report_model / "tokenizer.json").read_bytes())
    data["tokenizer"] = str(elsewhere)
    rewrite_manifest(tiny_report_model, data)
    with pytest.raises(ManifestError, match="not in files"):
        ReportLabeler.load(str(tiny_report_model))


# ---- the Python API: one input, one result; refuse what cannot be read correctly -------------------------
def test_report_labeler_takes_a_str_as_one_report() -> None:
    labeler = ReportLabeler.load("rules")
    result = labeler("No pneumothorax.")
    assert result.labels["Pneumothorax"] == 0.0
    assert len(labeler(["No pneumothorax.", "Edema."])) == 2
    for wrong in ({"a": "Edema."}, {"Edema."}, 3):
        with pytest.raises(TypeError):
            labeler(wrong)


def test_image_scorer_one_input_one_result(tiny_image_model: Path, tmp_path: Path) -> None:
    import pydicom

    scorer = ImageScorer.load(str(tiny_image_model))
    path = write_image(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    from_path, from_dataset = scorer(path), scorer(ds)
    assert from_dataset.status == "scored"
    np.testing.assert_allclose(from_dataset.probabilities, from_path.probabilities, rtol=1e-6)
    column = np.full((40, 30, 1), 0.5, np.float32)
    assert scorer(column).status == "scored"  # H x W x 1 is one image
    np.testing.assert_allclose(scorer(column).probabilities, scorer(column[:, :, 0]).probabilities)
    for wrong in (b"bytes", {"a": path}, 7):
        with pytest.raises(TypeError):
            scorer(wrong)


def test_integer_arrays_need_their_bit_depth(tiny_image_model: Path, tmp_path: Path) -> None:
    scorer = ImageScorer.load(str(tiny_image_model))
    twelve = ramp(top=4095, dtype=np.uint16)
    refused = scorer(twelve)
    assert refused.status == "error" and "bits_stored" in refused.reason
    as_12_bit = scorer(twelve, bits_stored=12)
    as_float = scorer(twelve.astype(np.float32) / 4095)
    np.testing.assert_allclose(as_12_bit.probabilities, as_float.probabilities, rtol=1e-5)
    assert scorer(np.full((8, 8), 3.0, np.float32)).status == "error"  # floats are [0, 1], never clipped


def test_nan_pixels_are_refused_and_do_not_poison_the_batch(tiny_image_model: Path, tmp_path: Path) -> None:
    scorer = ImageScorer.load(str(tiny_image_model), batch_size=4)
    good = [ramp(top=255, dtype=np.uint8), ramp(top=255, dtype=np.uint8)[::-1].copy()]
    nan = np.full((48, 64), np.nan, np.float32)
    alone = scorer(good)
    mixed = scorer([good[0], nan, good[1]])
    assert [r.status for r in mixed] == ["scored", "error", "scored"]
    assert mixed[1].probabilities is None and "NaN" in mixed[1].reason
    np.testing.assert_array_equal(mixed[0].probabilities, alone[0].probabilities)
    np.testing.assert_array_equal(mixed[2].probabilities, alone[1].probabilities)
    slope = write_image(tmp_path / "slope.dcm", RescaleSlope="NaN", RescaleIntercept="0")
    window = write_image(tmp_path / "window.dcm", WindowCenter="NaN", WindowWidth="400")
    assert [r.status for r in scorer([slope, window])] == ["error", "error"]


def _corrupt_rle(path: Path) -> Path:
    """An RLE file with one bit flipped in its pixel data that makes pylibjpeg-rle panic (Rust)."""
    from pydicom.uid import RLELossless

    write_compressed(path, RLELossless)
    import pydicom

    data = bytearray(path.read_bytes())
    data[len(data) - len(pydicom.dcmread(path).PixelData) + 3230] ^= 1 << 2
    path.write_bytes(bytes(data))
    return path


def test_a_decoder_panic_is_that_files_error(tiny_image_model: Path, tmp_path: Path) -> None:
    import pydicom

    bad = _corrupt_rle(tmp_path / "bad.dcm")
    with pytest.raises(BaseException) as info:
        pydicom.dcmread(bad).pixel_array
    if isinstance(info.value, Exception):
        pytest.skip("this pylibjpeg-rle raises an Exception here, not a panic")
    good = write_image(tmp_path / "good.dcm")
    results = ImageScorer.load(str(tiny_image_model))([good, bad, good])
    assert [r.status for r in results] == ["scored", "error", "scored"]
    assert "PanicException" in results[1].reason or "panic" in results[1].reason.lower()


def test_any_native_baseexception_is_caught_per_item(tiny_image_model: Path, tmp_path: Path, monkeypatch) -> None:
    class NativeCrash(BaseException):
        pass

    from radedge.images import dicom

    def explode(*args, **kwargs):
        raise NativeCrash("decoder blew up")

    good = write_image(tmp_path / "good.dcm")
    monkeypatch.setattr(dicom, "to_display", explode)
    result = ImageScorer.load(str(tiny_image_model))(good)
    assert result.status == "error" and "NativeCrash" in result.reason


def test_dicom_folder_fifo_and_dangling_link_are_records(tiny_image_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pacs"
    folder.mkdir()
    write_image(folder / "a.dcm")
    os.mkfifo(folder / "b.dcm")
    (folder / "c.dcm").symlink_to(folder / "missing.dcm")
    with open(os.path.join(os.fsencode(folder), b"d\xe9.dcm"), "wb") as f:
        f.write(write(make_dataset(ramp()), tmp_path / "x.dcm").read_bytes())
    out = tmp_path / "out.jsonl"
    with deadline(120):
        r = CliRunner().invoke(main, ["score-dicoms", str(folder), "-o", str(out), "--model", str(tiny_image_model),
                                      "--workers", "0", "--quiet"])
    assert r.exit_code == 1, r.output
    records = {rec["path"]: rec for rec in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(records) == {"a.dcm", "b.dcm", "c.dcm", "d\\xe9.dcm"}
    assert records["b.dcm"]["status"] == "error" and "FIFO" in records["b.dcm"]["reason"]
    assert records["c.dcm"]["status"] == "error" and records["d\\xe9.dcm"]["status"] == "scored"


# ---- eval --------------------------------------------------------------------------------------------
def test_eval_refuses_duplicate_ids_error_records_and_empty_id_lists(tmp_path: Path) -> None:
    from radedge import eval as rad_eval

    gold = tmp_path / "gold.csv"
    gold.write_text("id,Edema,Pleural Effusion\na,1.0,\nb,,1.0\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"id": "a", "labels": {"Edema": 1.0}}\n{"id": "a", "labels": {"Edema": 0.0}}\n'
                    '{"id": "b", "labels": {}}\n')
    with pytest.raises(ValueError, match="more than one prediction"):
        rad_eval.evaluate(gold, pred)
    pred.write_text('{"id": "a", "labels": {"Edema": 1.0}}\n{"id": "b", "labels": {}, "error": "InputError: x"}\n')
    with pytest.raises(ValueError, match="error record"):
        rad_eval.evaluate(gold, pred)
    ids = tmp_path / "ids.txt"
    ids.write_text("# none\n")
    r = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--pred", str(pred), "--ids", str(ids)])
    assert r.exit_code == 2 and "no ids" in r.output


# ---- interrupts --------------------------------------------------------------------------------------
def test_sigint_exits_130(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "in.csv"
    src.write_text("Edema.\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    from radedge.pipelines import reports as pipeline

    monkeypatch.setattr(pipeline, "read_reports", interrupted)
    r = label(src, "-o", tmp_path / "out.csv", "--model", "rules", "--quiet")
    assert r.exit_code == 130


def test_a_skipped_multiframe_object_is_not_read_whole(tiny_image_model: Path, tmp_path: Path) -> None:
    import tracemalloc

    frames = np.zeros((40, 512, 512), np.uint16)
    path = write(make_dataset(frames[0], NumberOfFrames=40), tmp_path / "cine.dcm")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PixelData = frames.tobytes()
    ds.save_as(path)
    assert path.stat().st_size > 20_000_000
    scorer = ImageScorer.load(str(tiny_image_model))
    tracemalloc.start()
    result = scorer(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.status == "skipped" and "multi-frame" in result.reason
    assert peak < 5_000_000, peak


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_scoring(tiny_image_model: Path, tmp_path: Path, n: int = 120):
    import subprocess
    import sys
    import time

    root = tmp_path / "export"
    for i in range(n):
        write_image(root / f"IM{i:04d}.dcm", ramp(256, 256))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "radedge.cli", "score-dicoms", str(root), "-o", str(out), "--model",
           str(tiny_image_model), "--workers", "2", "--batch-size", "2", "--quiet"]
    # SIGINT back to its default in the child: a test run started in the background by a shell without
    # job control inherits SIGINT ignored, and Python then never installs its Ctrl-C handler.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.01)
    return proc, out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_their_parent(tiny_image_model: Path, tmp_path: Path) -> None:
    import time

    proc, _ = _start_scoring(tiny_image_model, tmp_path)
    assert proc.poll() is None, "the run ended before it could be killed"
    workers = [k for k in _children(proc.pid) if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()]
    assert workers, "no worker processes seen"
    proc.kill()  # SIGKILL: no clean-up runs in the parent
    proc.wait()
    deadline = time.monotonic() + 30  # workers notice a dead parent within a second; margin for a loaded CI
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "worker processes outlived their parent"


def test_sigint_exits_130_and_the_rerun_resumes(tiny_image_model: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    proc, out = _start_scoring(tiny_image_model, tmp_path)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read().decode()
    cmd = [sys.executable, "-m", "radedge.cli", "score-dicoms", str(tmp_path / "export"), "-o", str(out),
           "--model", str(tiny_image_model), "--workers", "2", "--batch-size", "2", "--quiet"]
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0  # same run: resumed
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert len(paths) == len(set(paths)) == 120


def test_a_bad_report_does_not_change_the_others_results(tmp_path: Path) -> None:
    """The shipped int8 model's numbers depend on what shares its batch: a bad report must not
    move the chunk boundaries of the good ones."""
    phrases = ["Small left pleural effusion.", "Heart size is enlarged. Mild edema.", "No pneumothorax.",
               "Possible right lower lobe pneumonia.", "Lungs are clear. " * 6]
    good = [f"{phrases[i % len(phrases)]} Case {i}." for i in range(300)]
    clean, dirty = tmp_path / "clean.csv", tmp_path / "dirty.csv"
    clean.write_bytes("".join(f"{t}\n" for t in good).encode())
    dirty.write_bytes("".join(f"{t}\n" for t in good[:10]).encode() + b"bad \xff byte\n"
                      + "".join(f"{t}\n" for t in good[10:]).encode())
    outs = []
    for src in (clean, dirty):
        out = tmp_path / f"{src.stem}.jsonl"
        label(src, "-o", out, "--quiet")
        outs.append([json.loads(line) for line in out.read_text().splitlines()])
    without, with_bad = outs
    assert with_bad[10]["error"] and len(with_bad) == 301
    del with_bad[10]
    assert [r["probs"] for r in with_bad] == [r["probs"] for r in without]


def test_a_picture_over_the_pixel_cap_is_refused_before_decoding(tiny_image_model: Path, tmp_path: Path) -> None:
    import cv2

    png = tmp_path / "big.png"
    cv2.imwrite(str(png), np.zeros((64, 64), np.uint8))
    scorer = ImageScorer.load(str(tiny_image_model), max_pixels=1000)
    result = scorer(png)
    assert result.status == "error" and "too large" in result.reason
    assert ImageScorer.load(str(tiny_image_model))(png).status == "scored"


def test_jsonl_resume_with_another_input_or_model_is_refused(tmp_path: Path, tiny_report_model: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("Edema.\nNo effusion.\n")
    b.write_text("Cardiomegaly.\nNo effusion.\n")
    out = tmp_path / "out.jsonl"
    assert label(a, "-o", out, "--model", "rules", "--quiet").exit_code == 0
    before = out.read_bytes()
    r = label(b, "-o", out, "--model", "rules", "--quiet")  # same ids (1, 2), another input
    assert r.exit_code == 2 and "another input" in r.output and out.read_bytes() == before
    r = label(a, "-o", out, "--model", str(tiny_report_model), "--quiet")
    assert r.exit_code == 2 and "another model" in r.output and out.read_bytes() == before
    meta = json.loads(meta_path(out).read_text())
    assert meta["model"]["name"] == "rules" and len(meta["model"]["sha256"]) == 64 and "sha256" in meta["input"]
