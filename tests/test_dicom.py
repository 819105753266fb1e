"""radedge.images.dicom on generated fixtures (every awkward case) and on the shared corpus."""
from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from tests.paths import need_data
from tests.dicom_factory import (
    make_dataset, ramp, write, write_compressed, write_image, write_raw_dataset, write_sr, write_truncated,
)
from pydicom.uid import JPEG2000, JPEG2000Lossless, RLELossless

from radedge.errors import DicomError, DicomReadError, NotDicomError, PixelDecodeError, SkippedInput
from radedge.images.dicom import parse_views, read_dicom, sniff


def minmax(a):
    a = a.astype(np.float64)
    return (a - a.min()) / (a.max() - a.min())


@pytest.mark.parametrize("bits,top,dtype", [(8, 255, np.uint8), (12, 4095, np.uint16), (16, 65535, np.uint16)])
def test_bit_depths_scale_minmax(tmp_path, bits, top, dtype):
    pixels = ramp(top=top, dtype=dtype)
    d = read_dicom(write_image(tmp_path / "a.dcm", pixels, bits_stored=bits), voi=False)
    assert d.image.dtype == np.float32 and d.image.shape == pixels.shape
    np.testing.assert_allclose(d.image, minmax(pixels), atol=1e-6)
    assert d.intensity == "minmax"


def test_monochrome1_is_inverted_to_its_monochrome2_twin(tmp_path):
    pixels = ramp()
    mono2 = read_dicom(write_image(tmp_path / "m2.dcm", pixels), voi=False).image
    mono1 = read_dicom(write_image(tmp_path / "m1.dcm", (4095 - pixels).astype(np.uint16),
                                   photometric="MONOCHROME1"), voi=False).image
    np.testing.assert_allclose(mono1, mono2, atol=1e-6)


def test_signed_pixels_with_rescale(tmp_path):
    pixels = (ramp().astype(np.int32) - 2048).astype(np.int16)
    path = write_image(tmp_path / "s.dcm", pixels, RescaleSlope=2, RescaleIntercept=-1024)
    ds = pydicom.dcmread(path)
    assert ds.PixelRepresentation == 1
    d = read_dicom(path, voi=False)
    np.testing.assert_allclose(d.image, minmax(pixels * 2.0 - 1024), atol=1e-6)


def test_window_centre_width_in_rescaled_units(tmp_path):
    pixels = ramp()
    path = write_image(tmp_path / "w.dcm", pixels, RescaleSlope=1, RescaleIntercept=-1024,
                       WindowCenter=0, WindowWidth=2001)
    d = read_dicom(path, voi=True)
    assert d.intensity == "window"
    hu = pixels.astype(np.float64) - 1024
    # DICOM LINEAR: c' = c - 0.5, w' = w - 1 -> ((x - c') / w' + 0.5), clipped to [0, 1]
    expected = np.clip((hu + 0.5) / 2000 + 0.5, 0, 1)
    np.testing.assert_allclose(d.image, expected, atol=1e-5)
    assert read_dicom(path, voi=False).intensity == "minmax"


def test_voi_lut_sequence(tmp_path):
    pixels = ramp(top=255, dtype=np.uint8)
    ds = make_dataset(pixels, bits_stored=8)
    item = pydicom.Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new(0x00283006, "US", list(range(255, -1, -1)))  # LUTData  # an inverting LUT: pydicom's apply_voi, not a guess
    ds.VOILUTSequence = [item]
    d = read_dicom(write(ds, tmp_path / "lut.dcm"), voi=True)
    assert d.intensity == "voi-lut"
    np.testing.assert_allclose(d.image, (255 - pixels) / 255, atol=1e-6)


def test_incomplete_voi_lut_sequence_falls_back_to_the_window(tmp_path):
    # A VOI LUT Sequence item without LUTData is not a LUT: pydicom windows instead, and the
    # recorded intensity must say so.
    pixels = ramp()
    ds = make_dataset(pixels, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=0, WindowWidth=2001)
    item = pydicom.Dataset()
    item.LUTDescriptor = [256, 0, 8]
    ds.VOILUTSequence = [item]
    d = read_dicom(write(ds, tmp_path / "half-lut.dcm"), voi=True)
    assert d.intensity == "window"
    expected = np.clip((pixels.astype(np.float64) - 1024 + 0.5) / 2000 + 0.5, 0, 1)
    np.testing.assert_allclose(d.image, expected, atol=1e-5)


@pytest.mark.parametrize("dtype,window", [(np.uint16, True), (np.int16, True), (np.uint8, False), (np.int16, False)])
def test_lookup_table_path_equals_per_pixel_luts(tmp_path, dtype, window):
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    pixels = rng.integers(max(info.min, -3000), min(info.max, 3000), size=(40, 30)).astype(dtype)
    tags = {"RescaleSlope": 1.5, "RescaleIntercept": -100, "WindowCenter": 200, "WindowWidth": 900} if window else {}
    ds = pydicom.dcmread(write_image(tmp_path / "r.dcm", pixels, photometric="MONOCHROME1",
                                     bits_stored=8 * pixels.dtype.itemsize, **tags))
    got = read_dicom(tmp_path / "r.dcm", voi=True).image
    values = apply_modality_lut(ds.pixel_array, ds)
    if window:
        expected = (apply_voi_lut(values, ds) - (-100)) / ((2 ** 16 - 1) * 1.5)  # pydicom's output range
        if dtype == np.int16:
            expected = (apply_voi_lut(values, ds) - (-(2 ** 15) * 1.5 - 100)) / ((2 ** 16 - 1) * 1.5)
    else:
        expected = (values - values.min()) / (values.max() - values.min())
    np.testing.assert_allclose(got, 1.0 - expected, atol=1e-5)


def test_modality_lut_sequence(tmp_path):
    pixels = ramp(top=200, dtype=np.uint8)
    ds = make_dataset(pixels, bits_stored=8)
    item = pydicom.Dataset()
    item.LUTDescriptor = [256, 0, 16]
    item.ModalityLUTType = "US"
    lut = (np.abs(np.arange(256) - 100) * 10).tolist()  # not monotonic: 1000 .. 0 .. 1550
    item.add_new(0x00283006, "US", lut)
    ds.ModalityLUTSequence = [item]
    got = read_dicom(write(ds, tmp_path / "mlut.dcm"), voi=False).image
    values = np.asarray(lut, dtype=np.float64)[pixels]
    np.testing.assert_allclose(got, (values - values.min()) / (values.max() - values.min()), atol=1e-6)


def test_voi_asked_but_absent_falls_back_to_minmax(tmp_path):
    assert read_dicom(write_image(tmp_path / "a.dcm"), voi=True).intensity == "minmax"


def test_rgb_grey_is_converted_and_colour_skipped(tmp_path):
    grey = ramp(top=255, dtype=np.uint8)
    rgb = np.dstack([grey] * 3)
    d = read_dicom(write_image(tmp_path / "g.dcm", rgb, photometric="RGB", bits_stored=8,
                               sop_class=pydicom.uid.SecondaryCaptureImageStorage))
    np.testing.assert_allclose(d.image, grey / 255, atol=1e-5)
    colour = rgb.copy()
    colour[..., 0] = 255 - colour[..., 0]
    with pytest.raises(SkippedInput, match="colour image"):
        read_dicom(write_image(tmp_path / "c.dcm", colour, photometric="RGB", bits_stored=8))


def test_ybr_grey_is_converted(tmp_path):
    from pydicom.pixels import convert_color_space

    grey = ramp(top=255, dtype=np.uint8)
    ybr = convert_color_space(np.dstack([grey] * 3), "RGB", "YBR_FULL")
    d = read_dicom(write_image(tmp_path / "y.dcm", ybr, photometric="YBR_FULL", bits_stored=8,
                               sop_class=pydicom.uid.SecondaryCaptureImageStorage))
    np.testing.assert_allclose(d.image, grey / 255, atol=2 / 255)  # YBR round trip rounds


def test_multi_frame_is_skipped(tmp_path):
    frames = np.stack([ramp()] * 3)
    with pytest.raises(SkippedInput, match=r"multi-frame object \(NumberOfFrames 3\)"):
        read_dicom(write_image(tmp_path / "mf.dcm", frames))


def test_image_without_pixel_data_is_an_error_sr_a_skip(tmp_path):
    with pytest.raises(DicomReadError, match="without Rows/Columns/Pixel Data"):
        read_dicom(write(make_dataset(None), tmp_path / "nopix.dcm"))
    with pytest.raises(SkippedInput, match=r"no pixel data \(Basic Text SR Storage\)"):
        read_dicom(write_sr(tmp_path / "sr.dcm"))


def test_broken_files_are_errors_with_reasons(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "text.dcm").write_text("this is not DICOM\n" * 20)
    cases = {
        tmp_path / "empty.dcm": (NotDicomError, "zero-byte"),
        tmp_path / "text.dcm": (NotDicomError, "not a DICOM file"),
        write_raw_dataset(tmp_path / "raw.dcm"): (NotDicomError, "no 128-byte preamble"),
        write_truncated(tmp_path / "cut.dcm"): (PixelDecodeError, "cannot be decoded"),
        write_truncated(tmp_path / "cuthead.dcm", keep=0.002): (DicomError, "."),
    }
    for path, (kind, text) in cases.items():
        with pytest.raises(kind, match=text):
            read_dicom(path)


def test_non_dicom_named_otherwise_is_skipped(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / ".complete").write_bytes(b"")
    for name in ("notes.txt", ".DS_Store", ".complete"):
        with pytest.raises(SkippedInput, match="not a DICOM file"):
            read_dicom(tmp_path / name)


def test_found_by_content_not_extension(tmp_path):
    path = write_image(tmp_path / "IM0001")  # no extension, as in DICOMDIR file sets
    assert sniff(path) == "part10"
    assert read_dicom(path).image.shape == ramp().shape


def test_meta_without_preamble_is_read_without_force(tmp_path):
    good = write_image(tmp_path / "good.dcm")
    stripped = tmp_path / "stripped.dcm"
    stripped.write_bytes(good.read_bytes()[132:])
    assert sniff(stripped) == "meta-no-preamble"
    np.testing.assert_array_equal(read_dicom(stripped).image, read_dicom(good).image)


@pytest.mark.parametrize("modality,body,view,views,reason", [
    ("CT", "CHEST", "PA", None, "modality CT"),
    ("CR", "HIP", "AP", None, "body part HIP"),
    ("DX", "CHEST", "LL", None, r"lateral view \(ViewPosition LL\)"),
    ("DX", "CHEST", "AP", "PA", r"view \(ViewPosition AP\)"),
])
def test_skips_by_header(tmp_path, modality, body, view, views, reason):
    path = write_image(tmp_path / "x.dcm", modality=modality, body_part=body, view=view)
    with pytest.raises(SkippedInput, match=reason):
        read_dicom(path, views=parse_views(views))


def test_views_parameter_allows_laterals_and_missing_view_is_scored(tmp_path):
    lateral = write_image(tmp_path / "l.dcm", view="LL")
    assert read_dicom(lateral, views=parse_views("PA,AP,LL")).view == "LL"
    assert read_dicom(lateral, views=parse_views("lateral")).view == "LL"
    assert read_dicom(lateral, views=parse_views("all")).view == "LL"
    assert read_dicom(write_image(tmp_path / "n.dcm", view=None, body_part=None)).view == ""
    with pytest.raises(ValueError):
        parse_views(" , ")


def test_dicomdir_is_skipped(tmp_path):
    from pydicom.fileset import FileSet

    fs = FileSet()
    fs.add(make_dataset(ramp()))
    fs.write(tmp_path / "export")
    with pytest.raises(SkippedInput, match="DICOMDIR"):
        read_dicom(tmp_path / "export" / "DICOMDIR")


@pytest.mark.parametrize("ts", [RLELossless, JPEG2000Lossless])
def test_lossless_compression_decodes_exactly(tmp_path, ts):
    plain = read_dicom(write_image(tmp_path / "plain.dcm"), voi=False).image
    packed = tmp_path / "packed.dcm"
    write_compressed(packed, ts)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID == ts
    np.testing.assert_array_equal(read_dicom(packed, voi=False).image, plain)


def test_lossy_jpeg2000_decodes_close(tmp_path):
    plain = read_dicom(write_image(tmp_path / "plain.dcm", ramp(128, 128)), voi=False).image
    lossy = read_dicom(write_compressed(tmp_path / "j2k.dcm", JPEG2000, ramp(128, 128)), voi=False).image
    assert np.abs(lossy - plain).mean() < 0.05


def test_no_patient_identifiers_in_the_record(tmp_path):
    d = read_dicom(write_image(tmp_path / "a.dcm"))
    text = repr({k: v for k, v in vars(d).items() if k != "image"})
    assert "SECRET" not in text and d.sop_uid and d.study_uid and d.series_uid


# ---- the shared corpus ------------------------------------------------------------------------------
def corpus_rows():
    root = need_data("dicom")
    with open(root / "MANIFEST.csv", newline="") as fh:
        return root, list(csv.DictReader(fh))


def outcome(path) -> tuple[str, str]:
    try:
        read_dicom(path)
        return "scored", ""
    except SkippedInput as exc:
        return "skipped", str(exc)
    except DicomError as exc:
        return "error", str(exc)


def test_corpus_every_file_as_manifest_expects():
    from benchmarks.dicom import expected_matches

    root, rows = corpus_rows()
    wrong = [(r["path"], r["expected"], got) for r in rows
             if not expected_matches(r["expected"], *(got := outcome(root / r["path"])))]
    assert wrong == []


def test_corpus_every_transfer_syntax_decodes():
    root, rows = corpus_rows()
    decoded = set()
    for r in rows:
        if r["expected"] == "score":
            ds = pydicom.dcmread(root / r["path"])
            read_dicom(root / r["path"])
            decoded.add(ds.file_meta.TransferSyntaxUID.name)
    for r in rows:  # the hip files are skipped by header; their pixels must still decode (not RG2_JPLY)
        if r["path"].startswith("wg04/RG2_") and "decode also fails" not in r["expected"]:
            ds = pydicom.dcmread(root / r["path"])
            assert ds.pixel_array.ndim == 2
            decoded.add(ds.file_meta.TransferSyntaxUID.name)
    for name in ["Explicit VR Little Endian", "Implicit VR Little Endian", "RLE Lossless", "JPEG Baseline (Process 1)",
                 "JPEG Extended (Process 2 and 4)", "JPEG-LS Lossless Image Compression",
                 "JPEG-LS Lossy (Near-Lossless) Image Compression", "JPEG 2000 Image Compression",
                 "JPEG 2000 Image Compression (Lossless Only)"]:
        assert name in decoded, name
    assert any(n.startswith("JPEG Lossless, Non-Hierarchical, First-Order") for n in decoded)


def test_corpus_monochrome1_twin_equals_original():
    root, rows = corpus_rows()
    twins = [r for r in rows if r["twin_of"]]
    assert twins
    for r in twins:
        for voi in (True, False):
            np.testing.assert_allclose(read_dicom(root / r["path"], voi=voi).image,
                                       read_dicom(root / r["twin_of"], voi=voi).image, atol=1e-6)


def test_corpus_extremity_is_skipped():
    root, _ = corpus_rows()
    for name in ("RG3_J2KR.dcm", "RG3_J2KI.dcm"):
        with pytest.raises(SkippedInput, match="body part EXTREMITY"):
            read_dicom(root / "wg04" / name)
