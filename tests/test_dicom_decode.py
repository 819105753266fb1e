"""Reduced-resolution decoding (radedge.images.codecs) and the pixel cap: the reduced path gives what
full decoding + resizing gives, per transfer syntax, and falls back to full decoding whenever it cannot."""
from __future__ import annotations

import csv
import subprocess
import sys

import cv2
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from tests.paths import need_data
from tests.dicom_factory import make_dataset, write, write_image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from benchmarks.dicom import as_baseline_jpeg
from radedge.images import dicom
from radedge.images.codecs import decode_reduced, set_decoder_threads
from radedge.images.codecs.blocks import BLOCK_MARGIN, block_means, reduce_full
from radedge.images.codecs.jpeg2000 import open_reduced
from radedge.images.codecs import jpeg, jpeg2000
from radedge.images.codecs.levels import cover, largest_factor, reduced_size
from radedge.images.codecs.reduced import THREADS_VARIABLE, stored_values
from radedge.errors import ImageTooLargeError, PixelDecodeError
from radedge.images.dicom import read_dataset, read_dicom
from radedge.images.preprocess import _resize_reduced, preprocess, resize_square, resized_shape
from radedge.pipelines.workers import KEEP_BYTES, decoder_threads, inference_threads, keep_freed_memory

SPEC = {"size": 32, "resize": "letterbox", "channels": 1, "mean": [0.0], "std": [1.0], "voi": True}


def smooth(rows: int = 256, cols: int = 320, top: int = 4095, dtype=np.uint16) -> np.ndarray:
    """A smooth test radiograph (broad blobs on a gradient): what resizing keeps."""
    y, x = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    v = 0.35 + 0.3 * x + 0.25 * np.exp(-((x - 0.3) ** 2 + (y - 0.4) ** 2) / 0.02) \
        - 0.2 * np.exp(-((x - 0.7) ** 2 + (y - 0.6) ** 2) / 0.05)
    return np.round(np.clip(v, 0, 1) * top).astype(dtype)


def compressed(path, pixels, ts=JPEG2000Lossless, **tags):
    ds = make_dataset(pixels, **tags)
    if ts == JPEGBaseline8Bit:
        as_baseline_jpeg(ds, pixels, quality=95)
    elif ts != ExplicitVRLittleEndian:
        ds.compress(ts, encoding_plugin="pydicom" if ts == RLELossless else "",
                    **({"j2k_cr": [10]} if ts == JPEG2000 else {}))
    return write(ds, path)


def both(path, spec=SPEC):
    """(full decode + preprocess, reduced decode + preprocess, the reduced DicomImage)."""
    full = read_dicom(path, voi=spec["voi"])
    red = read_dicom(path, voi=spec["voi"], decode_for=spec)
    return preprocess(full.image, spec), preprocess(red.image, spec, red.shape, red.origin, red.kernel), red


# ---- levels and geometry ----------------------------------------------------------------------------
def test_level_covers_the_resized_shape_by_the_codecs_margin_never_less():
    need = resized_shape((2840, 2972), 192)
    assert need == (183, 192)
    assert cover(need, 1.5) == (275, 288) and cover(need) == (366, 384)  # rounded up; default 2
    for margin, expected in [(jpeg.MARGIN, 4), (jpeg2000.MARGIN, 8)]:  # DCT scaling 2, wavelets 1.5
        factor = largest_factor((2840, 2972), cover(need, margin), 1 << 32)
        assert factor == expected
        assert reduced_size(2972, factor) >= margin * 192 > reduced_size(2972, 2 * factor)


def test_reduced_resize_at_factor_one_is_inter_area():
    image = np.random.default_rng(0).random((97, 61)).astype(np.float32)
    expected = cv2.resize(image, (13, 20), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(_resize_reduced(image, 20, 13, (97, 61), 0.0), expected, atol=1e-5)


def test_reduced_resize_of_block_means_equals_full_resize():
    """Block means resized over the full grid = the full image resized, when boxes hold whole blocks."""
    full = np.random.default_rng(1).random((64, 96)).astype(np.float32)
    means = full.reshape(16, 4, 24, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(resize_square(means, 8, "stretch", shape=(64, 96)),
                               resize_square(full, 8, "stretch"), atol=1e-5)
    with pytest.raises(ValueError, match="power-of-two"):
        resize_square(np.zeros((10, 10), np.float32), 8, shape=(64, 96))


def test_stored_values_sign_rules():
    bits = np.array([0, 0x7FF, 0x800, 0xFFF], dtype=np.uint16)
    assert stored_values(bits, 12, signed=False).tolist() == [0, 2047, 2048, 4095]
    assert stored_values(bits, 12, signed=True).tolist() == [0, 2047, -2048, -1]
    assert stored_values(np.array([200], np.uint16), 8, signed=True).dtype == np.int8


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
@pytest.mark.parametrize("shape,factor", [((64, 96), 4), ((37, 50), 4), ((35, 29), 8), ((5, 9), 8)])
def test_block_means_are_rounded_means_of_clipped_blocks(dtype, shape, factor):
    info = np.iinfo(dtype)
    stored = np.random.default_rng(2).integers(max(info.min, -3000), min(info.max, 4095), shape).astype(dtype)
    means = block_means(stored, factor)
    rows, cols = reduced_size(shape[0], factor), reduced_size(shape[1], factor)
    assert means.dtype == stored.dtype and means.shape == (rows, cols)
    expected = np.array([[stored[i * factor:(i + 1) * factor, j * factor:(j + 1) * factor].mean() for j in range(cols)]
                         for i in range(rows)])
    assert np.abs(means - expected).max() <= 0.5 + 1e-9  # rounded to the stored type


def test_reduce_full_keeps_what_it_cannot_shrink():
    assert BLOCK_MARGIN == 4
    assert reduce_full(smooth(256, 320), (64, 80)).factor == 1  # 4 x the need is the frame itself
    wide = smooth(256, 320).astype(np.int32)  # no INTER_AREA for this type: kept in full
    assert reduce_full(wide, (16, 20), "full (x)").how == "full (x)"
    frame = reduce_full(smooth(256, 320), (16, 20), "full (x)")
    assert (frame.factor, frame.origin, frame.how, frame.stored.shape) == (4, 0.0, "full (x), block means 1/4", (64, 80))
    assert frame.extremes == (float(smooth().min()), float(smooth().max()))
    few_levels = (smooth(256, 320) >> 8).astype(np.uint8)  # 4-bit values: rounded means would lose grey
    assert few_levels.max() - few_levels.min() < 255 and reduce_full(few_levels, (16, 20)).factor == 1


# ---- per transfer syntax, per pixel rule: reduced + resize ~ full + resize ----------------------------
def pixel_case(case: str, pixels: np.ndarray) -> tuple[np.ndarray, dict]:
    """(pixels, dataset tags) of one pixel rule: MONOCHROME1, a window, a rescale, a VOI LUT, signed."""
    tags: dict = {}
    if case == "monochrome1":
        pixels, tags = (4095 - pixels).astype(np.uint16), {"photometric": "MONOCHROME1"}
    elif case == "window":
        tags = {"WindowCenter": 1800, "WindowWidth": 1600}
    elif case == "rescale":
        tags = {"RescaleSlope": 2, "RescaleIntercept": -1024, "WindowCenter": 2500, "WindowWidth": 5000}
    elif case == "rescale-minmax":
        tags = {"RescaleSlope": 0.5, "RescaleIntercept": -1024}
    elif case == "voi-lut":
        item = pydicom.Dataset()
        item.LUTDescriptor = [4096, 0, 12]
        item.add_new(0x00283006, "US", np.sqrt(np.arange(4096) * 4095.0).astype(int).tolist())  # LUTData
        tags = {"VOILUTSequence": pydicom.Sequence([item])}
    elif case == "signed":
        pixels = (pixels.astype(np.int32) - 2048).astype(np.int16)
    return pixels, tags


@pytest.mark.parametrize("ts", [JPEG2000Lossless, JPEG2000])
@pytest.mark.parametrize("case", ["plain", "monochrome1", "window", "rescale", "voi-lut", "minmax"])
def test_jpeg2000_reduced_matches_full(tmp_path, ts, case):
    pixels, tags = pixel_case(case, smooth())
    path = compressed(tmp_path / "j.dcm", pixels, ts, **tags)
    spec = dict(SPEC, voi=case != "minmax")
    full, red, d = both(path, spec)
    assert d.decoded == "jpeg2000 1/4" and d.image.shape == (64, 80) and d.shape == (256, 320)
    assert np.abs(full - red).mean() < 0.01 and np.abs(full - red).max() < 0.06


LINEAR_CASES = ("plain", "monochrome1", "rescale-minmax", "signed")


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, RLELossless])
@pytest.mark.parametrize("case", ["plain", "monochrome1", "window", "rescale", "rescale-minmax", "voi-lut", "minmax",
                                  "signed"])
def test_full_decoded_frames_shrink_to_block_means_before_the_luts(tmp_path, ts, case):
    """LUTs after block means ~ LUTs at full size, then resizing; linear ones (rescale, min-max,
    MONOCHROME1) commute with averaging, so there only rounding to the stored type differs."""
    pixels, tags = pixel_case(case, smooth(257, 321))
    voi = case not in ("minmax", "rescale-minmax", "signed")
    path = compressed(tmp_path / "f.dcm", pixels, ts, **tags)
    full, red, d = both(path, dict(SPEC, size=20, voi=voi))  # 4 x 20 covers 80 of 321 columns: 1/4
    assert d.decoded.startswith("full (transfer syntax") and d.decoded.endswith("block means 1/4")
    assert d.image.shape == (65, 81) and d.shape == (257, 321) and d.origin == 0.0
    lut_then_mean = means_of(read_dicom(path, voi=voi).image, 4)
    if case in LINEAR_CASES:  # only rounding the means to the stored type differs
        assert np.abs(d.image - lut_then_mean).max() < 2 / 4095
        assert np.abs(full - red).max() < 0.005  # resizing's boxes do not hold whole blocks
    else:  # a window / VOI LUT bends the blocks that straddle its edges
        assert np.abs(d.image - lut_then_mean).mean() < 0.002 and np.abs(d.image - lut_then_mean).max() < 0.03
        assert np.abs(full - red).mean() < 0.005 and np.abs(full - red).max() < 0.03


def means_of(image: np.ndarray, factor: int) -> np.ndarray:
    """`factor` x `factor` block means of a float image, the last blocks clipped to it."""
    rows, cols = reduced_size(image.shape[0], factor) * factor, reduced_size(image.shape[1], factor) * factor
    padded = np.pad(image.astype(np.float64), ((0, rows - image.shape[0]), (0, cols - image.shape[1])),
                    constant_values=np.nan)
    return np.nanmean(padded.reshape(rows // factor, factor, cols // factor, factor), axis=(1, 3))


def test_jpeg2000_signed_pixels(tmp_path):
    pixels = (smooth().astype(np.int32) - 2048).astype(np.int16)
    path = compressed(tmp_path / "s.dcm", pixels, RescaleSlope=1, RescaleIntercept=0)
    assert pydicom.dcmread(path).PixelRepresentation == 1
    d = read_dicom(path, voi=False, decode_for=SPEC)
    stored = decode_reduced(read_dataset(path), resized_shape((256, 320), 32)).stored
    assert stored.dtype == np.int16 and stored.min() < -500 and stored.max() > 400
    area = cv2.resize(pixels.astype(np.float32), (80, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(stored - area).mean() < 40  # 12-bit values: the wavelet low-pass is near a block mean
    full, red, _ = both(path, dict(SPEC, voi=False))
    assert d.decoded.startswith("jpeg2000") and np.abs(full - red).mean() < 0.01


def test_jpeg2000_precision_differs_from_bits_stored(tmp_path):
    """A 16-bit codestream in a dataset saying BitsStored 12: values as pydicom's full decode reads them."""
    from openjpeg.utils import encode_array

    pixels = smooth(top=65535)
    ds = make_dataset(smooth(), bits_stored=12)
    ds.PixelData = encapsulate([encode_array(pixels, bits_stored=16, photometric_interpretation=2, use_mct=False)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    path = write(ds, tmp_path / "p16.dcm")
    full_stored = read_dataset(path).pixel_array
    red_stored = decode_reduced(read_dataset(path), resized_shape((256, 320), 32)).stored
    assert full_stored.max() > 4095 and red_stored.max() > 4095
    area = cv2.resize(full_stored.astype(np.float32), (80, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(red_stored - area).mean() < 0.01 * 65535
    full, red, _ = both(path, dict(SPEC, voi=False))
    assert np.abs(full - red).mean() < 0.01


def test_jpeg2000_fragments_and_odd_sizes(tmp_path):
    """Fragments joined; a size Pillow's own reduce rounding rejects (n = 4k + 1 at level 2) decodes."""
    pixels = smooth(257, 321)
    one = read_dataset(compressed(tmp_path / "one.dcm", pixels))
    frame = next(generate_frames(one.PixelData, number_of_frames=1))
    one.PixelData = encapsulate([frame], fragments_per_frame=3)
    many = write(one, tmp_path / "many.dcm")
    assert len(list(pydicom.encaps.generate_fragments(read_dataset(many).PixelData[8 + 4:]))) >= 3
    full, red, d = both(many)
    assert d.decoded == "jpeg2000 1/4" and d.image.shape == (65, 81)
    assert np.abs(full - red).mean() < 0.01
    image = open_reduced(frame, 2, (257, 321))
    image.load()
    assert image.size == (81, 65)


def test_jpeg_baseline_reduced_matches_full(tmp_path):
    pixels = smooth(512, 384, top=255, dtype=np.uint8)
    path = compressed(tmp_path / "b.dcm", pixels, JPEGBaseline8Bit, WindowCenter=128, WindowWidth=256)
    full, red, d = both(path)
    assert d.decoded == "jpeg 1/8" and d.image.shape == (64, 48)
    assert np.abs(full - red).mean() < 0.01 and np.abs(full - red).max() < 0.05


def test_colour_jpeg_and_other_syntaxes_decode_in_full(tmp_path):
    rgb = np.repeat(smooth(256, 256, top=255, dtype=np.uint8)[..., None], 3, axis=2)
    ds = make_dataset(rgb, photometric="RGB", bits_stored=8, PlanarConfiguration=0)
    as_baseline_jpeg(ds, rgb, quality=95, photometric="YBR_FULL_422")  # YCbCr 4:2:0, as a PACS sends colour
    colour = read_dicom(write(ds, tmp_path / "ybr.dcm"), decode_for=SPEC)
    assert colour.decoded == "full (YBR_FULL_422 image (only grey frames are reduced))"
    assert colour.intensity == "rgb-luma" and colour.image.shape == (256, 256)  # judged as before
    rle = compressed(tmp_path / "rle.dcm", smooth(), RLELossless)
    assert read_dicom(rle, decode_for=SPEC).decoded.startswith("full (transfer syntax")
    small = compressed(tmp_path / "small.dcm", smooth(48, 64))
    assert read_dicom(small, decode_for=SPEC).decoded == "full (no resolution level between full size and the model's input)"


def test_reduced_failure_falls_back_to_full(tmp_path, monkeypatch):
    path = compressed(tmp_path / "j.dcm", smooth())
    plain = read_dicom(path).image

    def broken(ds, need):
        raise RuntimeError("codec bug")

    monkeypatch.setattr(dicom, "decode_reduced", broken)
    d = read_dicom(path, decode_for=dict(SPEC, size=64))
    assert d.decoded == "full (reduced decoding failed: RuntimeError: codec bug)"  # too small for block means
    np.testing.assert_array_equal(d.image, plain)
    d = read_dicom(path, decode_for=dict(SPEC, size=20))
    # decoded in full, then block means before the LUTs, as for any other full-decoded grey frame
    assert d.decoded == "full (reduced decoding failed: RuntimeError: codec bug), block means 1/4"
    ds = read_dataset(path)
    stored = ds.pixel_array
    np.testing.assert_array_equal(d.image, dicom.to_display(ds, True, block_means(stored, 4),
                                                            (stored.min(), stored.max()))[0])


def test_codestream_size_disagreeing_with_header(tmp_path):
    """The reduced path refuses; a codestream claiming a huge size is refused by the cap, not decoded."""
    path = compressed(tmp_path / "j.dcm", smooth())
    ds = read_dataset(path)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    ds.Rows, ds.Columns = 200, 300  # header disagrees with the 256 x 320 codestream
    write(ds, tmp_path / "mismatch.dcm")
    for decode_for in (None, SPEC):  # full decoding decides, as without the reduced path
        with pytest.raises(PixelDecodeError, match="could not broadcast"):
            read_dicom(tmp_path / "mismatch.dcm", decode_for=decode_for)
    frame[8:16] = (60000).to_bytes(4, "big") * 2  # SIZ Xsiz, Ysiz: 60000 x 60000
    ds = read_dataset(path)
    ds.PixelData = encapsulate([bytes(frame)])
    write(ds, tmp_path / "forged.dcm")
    with pytest.raises(ImageTooLargeError, match="codestream is over Pillow"):
        read_dicom(tmp_path / "forged.dcm", decode_for=SPEC)
    assert read_dicom(path, decode_for=SPEC).decoded == "jpeg2000 1/4"


# ---- the cap -----------------------------------------------------------------------------------------
def forged(path, rows=65535, cols=65535):
    """A few-KB file whose header claims rows x cols 16-bit pixels (8.6 GB once decoded)."""
    ds = make_dataset(smooth(64, 64))
    ds.Rows, ds.Columns = rows, cols
    return write(ds, path)


def test_forged_header_is_refused_before_decoding(tmp_path, monkeypatch):
    path = forged(tmp_path / "forged.dcm")
    assert path.stat().st_size < 20_000

    def no_decode(ds):
        raise AssertionError("decoded despite the cap")

    monkeypatch.setattr(dicom, "decode_pixels", no_decode)
    with pytest.raises(ImageTooLargeError, match=r"65535 x 65535 x 1 = 4,294,836,225 pixels"):
        read_dicom(path)
    monkeypatch.undo()
    with pytest.raises(ImageTooLargeError):
        read_dicom(write_image(tmp_path / "ok.dcm", smooth(64, 64)), max_pixels=64 * 64 - 1)
    assert read_dicom(tmp_path / "ok.dcm", max_pixels=64 * 64).image.shape == (64, 64)


def test_score_dicoms_max_pixels_option(tiny_image_model, tmp_path):
    from radedge.cli import main

    root = tmp_path / "export"
    forged(root / "forged.dcm")
    write_image(root / "good.dcm", smooth(64, 64))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["score-dicoms", str(root), "-o", str(out), "--model", str(tiny_image_model),
                                       "--workers", "0", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    rows = {r["path"]: r for r in csv.DictReader(open(out, newline=""))}
    assert rows["good.dcm"]["status"] == "scored"
    assert rows["forged.dcm"]["status"] == "error" and rows["forged.dcm"]["error_type"] == "ImageTooLargeError"
    assert "--max-pixels" in rows["forged.dcm"]["reason"]
    out2 = tmp_path / "out2.csv"
    result = CliRunner().invoke(main, ["score-dicoms", str(root), "-o", str(out2), "--model", str(tiny_image_model),
                                       "--workers", "0", "--quiet", "--max-pixels", "4000"], catch_exceptions=False)
    rows = {r["path"]: r for r in csv.DictReader(open(out2, newline=""))}
    assert rows["good.dcm"]["error_type"] == "ImageTooLargeError"


def test_forged_header_memory_stays_small(tmp_path):
    """In a process limited to 1 GiB of address space the forged file is an error record, not a crash."""
    path = forged(tmp_path / "forged.dcm")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from radedge.images.scorer import prepare_input\n"
            f"p = prepare_input({str(path)!r}, {SPEC!r}, images=False)\n"
            "print(p.status, p.error_type)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["error", "ImageTooLargeError"], out.stderr[-2000:]


# ---- threads -----------------------------------------------------------------------------------------
def test_decoder_threads_share_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [decoder_threads(w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    set_decoder_threads(5)
    import os

    assert os.environ[THREADS_VARIABLE] == "3"  # the user's setting wins
    monkeypatch.delenv(THREADS_VARIABLE)
    set_decoder_threads(2)
    assert os.environ[THREADS_VARIABLE] == "2"


def test_inference_threads_leave_the_workers_their_cores(monkeypatch, tmp_path):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert [inference_threads(w) for w in (0, 1, 2, 4)] == [2, 1, 1, 1]
    from radedge.images.scorer import ImageScorer
    from radedge.pipelines import dicoms

    asked = []

    def load(name, **kw):  # the threads score_folder asks for, then stop
        asked.append(kw["threads"])
        raise RuntimeError("stop")

    monkeypatch.setattr(ImageScorer, "load", load)
    for workers, threads in ((2, None), (0, None), (2, 3)):
        with pytest.raises(RuntimeError, match="stop"):
            dicoms.score_folder(tmp_path, tmp_path.parent / "o.csv", workers=workers, threads=threads)
    assert asked == [1, None, 3]


def test_keep_freed_memory_asks_glibc_to_keep_blocks(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr("ctypes.CDLL", lambda name: Libc())
    assert keep_freed_memory() is True
    assert calls == [(-3, KEEP_BYTES), (-1, 2 * KEEP_BYTES)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    monkeypatch.setattr("ctypes.CDLL", lambda name: object())  # a C library without mallopt
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_spares_the_page_faults_of_the_next_file():
    """In a fresh process, a file's worth of buffers (twenty 1 MB blocks, held together, then freed):
    glibc's defaults give the freed heap top back to the kernel, so the next file faults its pages
    in again; with the heap keeping freed blocks it does not."""
    code = ("import resource, sys, numpy as np\n"
            "from radedge.pipelines.workers import keep_freed_memory\n"
            "if sys.argv[1] == 'keep': assert keep_freed_memory()\n"
            "def one_file(): blocks = [np.ones(1 << 20, np.uint8) for _ in range(20)]; return len(blocks)\n"
            "one_file(); one_file()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(5): one_file()\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                                       timeout=120, check=True).stdout) for mode in ("default", "keep")}
    pages = 5 * (20 << 20) // 4096
    assert faults["default"] > pages // 8, faults  # about a quarter of the pages on glibc 2.36
    assert faults["keep"] < pages // 100, faults


# ---- the shared corpus, with the shipped model -------------------------------------------------------
def corpus_files(syntaxes):
    root = need_data("dicom")
    with open(root / "MANIFEST.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["expected"] == "score" and r["transfer_syntax"] in syntaxes]
    return root, [r["path"] for r in rows]


FULL_DECODED = ("Explicit VR Little Endian", "Implicit VR Little Endian", "RLE Lossless",
                "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
                "JPEG-LS Lossless Image Compression", "JPEG-LS Lossy (Near-Lossless) Image Compression")


@pytest.mark.parametrize("syntax", FULL_DECODED)
def test_corpus_luts_after_block_means_equal_luts_then_means(syntax):
    """Per transfer syntax decoded in full, on the shared corpus: the LUTs applied to block means give
    the block means of the LUTs' output (a window clips only the blocks straddling its edges), and the
    model's input moves by less than a grey level on average. A 64-pixel model input, so that even the
    512-pixel files are averaged (4 x 64 = 256: blocks of 2, of 4 for 1024 pixels)."""
    root, paths = corpus_files({syntax})
    assert paths, syntax
    spec = dict(SPEC, size=64)
    for path in paths:
        full = read_dicom(root / path, voi=True, views=None)
        d = read_dicom(root / path, voi=True, views=None, decode_for=spec)
        factor = int(d.decoded.rsplit("block means 1/", 1)[1])
        assert factor >= 2 and d.image.shape == tuple(reduced_size(n, factor) for n in full.image.shape), path
        diff = np.abs(d.image - means_of(full.image, factor))
        assert diff.mean() < 1e-3 and diff.max() < 0.03, (path, diff.mean(), diff.max())
        moved = np.abs(preprocess(full.image, spec) - preprocess(d.image, spec, d.shape, d.origin))
        assert moved.mean() < 1 / 255 and moved.max() < 0.1, (path, moved.mean(), moved.max())


@pytest.mark.slow
@pytest.mark.parametrize("syntax,codec", [("JPEG 2000 Image Compression (Lossless Only)", "jpeg2000"),
                                          ("JPEG 2000 Image Compression", "jpeg2000"),
                                          ("JPEG Baseline (Process 1)", "jpeg"),
                                          ("Explicit VR Little Endian", "full"),  # block means where large
                                          ("JPEG-LS Lossy (Near-Lossless) Image Compression", "full")])
def test_corpus_scores_reduced_vs_full(syntax, codec):
    """Network scores within 0.03 of full decoding; a label may only change where the full-decoding
    (calibrated) score lies within 0.01 of its threshold (the shipped int8 model moves by about 1e-3 with its batch alone)."""
    from radedge.images.scorer import ImageScorer

    root, paths = corpus_files({syntax})
    assert paths
    reduced = ImageScorer.load("default", batch_size=1)
    full = ImageScorer.load("default", batch_size=1, reduced=False)
    for path in paths:
        d = read_dicom(root / path, voi=reduced.spec["voi"], decode_for=reduced.spec)
        assert d.decoded.startswith(codec), (path, d.decoded)
        a, b = full([root / path])[0], reduced([root / path])[0]
        assert a.status == b.status == "scored", path
        learned = ~np.isnan(a.probabilities)  # findings the model was not trained for are NaN in both
        assert learned.any() and np.array_equal(learned, ~np.isnan(b.probabilities)), path
        # the network's own scores (isotonic calibration is a step function: it may amplify a small change)
        raw_a, raw_b = (s.infer(s.prepare(root / path).pixels[None]) for s in (full, reduced))
        assert np.abs(raw_a - raw_b).max() <= 0.03, path
        flipped = (a.labels != b.labels) & learned
        assert np.all(np.abs(a.probabilities - reduced.thresholds)[flipped] < 0.01), path
