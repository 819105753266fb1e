"""The JPEG 2000 9/7 synthesis that rebuilds a reduced frame (`radedge.images.codecs.wavelet`), the
COD parse that says which wavelet a codestream uses, and the resizing that reads samples by it."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import JPEG2000, JPEG2000Lossless

from radedge.images.codecs import jpeg2000
from radedge.images.codecs.reduced import single_frame
from radedge.images.codecs.wavelet import ALPHA, BETA, GAMMA, synthesize
from radedge.images.dicom import read_dataset, read_dicom
from radedge.images.preprocess import _area_taps, _axis_taps, _synthesis_taps, preprocess, resize_square
from tests.test_dicom_decode import SPEC, compressed, smooth

DELTA = 0.443506852043971  # T.800 step 3 (its inverse adds nothing when the details are zero)


def analysis_low(x: np.ndarray) -> np.ndarray:
    """One forward 9/7 lifting level (T.800 F.4.8.2, without the final scaling), the low band:
    written here from the standard, apart from the code under test (even length)."""
    x = x.astype(np.float64).copy()
    for step, weight in enumerate((ALPHA, BETA, GAMMA, DELTA)):
        y = np.pad(x, 1, mode="reflect")  # whole-sample symmetric extension, renewed each step
        if step % 2 == 0:  # odd samples from their even neighbours
            x[1::2] += weight * (y[1:-1:2] + y[3::2])
        else:  # even samples from their odd neighbours
            x[0::2] += weight * (y[0:-2:2] + y[2::2])
    return x[0::2]


def synthesis(n: int, factor: int) -> np.ndarray:
    """The dense [n, samples] synthesis matrix: every sample rebuilt on its own."""
    return synthesize(np.eye(-(-n // factor)), n, factor)


def test_synthesis_rows_sum_to_one_and_flat_stays_flat():
    for n, factor in [(2972, 8), (37, 4), (5, 2)]:
        matrix = synthesis(n, factor)
        assert matrix.shape == (n, -(-n // factor))
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("n_out,n_full,factor", [(192, 2972, 8), (183, 2840, 8), (40, 321, 4), (7, 37, 2), (3, 37, 8),
                                                 (10, 2000, 2)])  # a box of 100 samples: wider combs
def test_comb_taps_equal_the_box_over_the_dense_synthesis(n_out, n_full, factor):
    """The resizing's weights built from combs of samples equal INTER_AREA's box applied to the
    dense synthesis matrix (so no comb tooth leaked into another's output pixel)."""
    index, weight = _area_taps(n_out, n_full, 1, 0.0)
    box = np.zeros((n_out, n_full))
    np.add.at(box, (np.arange(n_out)[:, None], index), weight)
    expected = box @ synthesis(n_full, factor)
    taps, tap_w = _synthesis_taps(n_out, n_full, factor)
    got = np.zeros_like(expected)
    np.add.at(got, (np.arange(n_out)[:, None], taps), tap_w)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_synthesis_rebuilds_a_cubic_from_its_low_band():
    """The 9/7 filter has four vanishing moments: a cubic has no detail, so its low band alone
    rebuilds it (away from the ends, where the symmetric extension is not the cubic)."""
    t = np.linspace(-1, 1, 200)
    x = 0.4 + 0.3 * t - 0.5 * t ** 2 + 0.7 * t ** 3
    low = analysis_low(x)
    low = low / analysis_low(np.ones(200))[0]  # the band's gain (the standard's K) normalised away
    rebuilt = synthesis(200, 2) @ low
    np.testing.assert_allclose(rebuilt[12:-12], x[12:-12], atol=1e-6)
    wrong = np.repeat(low, 2)  # blocks do not rebuild it
    assert np.abs(wrong[12:-12] - x[12:-12]).max() > 5 * np.abs(rebuilt[12:-12] - x[12:-12]).max()


def test_one_sample_axes_and_their_neighbours():
    np.testing.assert_allclose(synthesize(np.array([0.7]), 1, 4), [0.7])
    np.testing.assert_allclose(synthesize(np.array([0.3]), 2, 2), [0.3, 0.3])
    np.testing.assert_allclose(synthesize(np.array([0.2, 0.2]), 3, 2), [0.2, 0.2, 0.2])


def header(*segments: bytes) -> bytes:
    """SOC, a SIZ stub, the given marker segments, SOT."""
    return b"\xff\x4f" + b"\xff\x51\x00\x04\x00\x00" + b"".join(segments) + b"\xff\x90\x00\x0a"


def cod(transform: int) -> bytes:  # Lcod 12: Scod, SGcod (4), SPcod (levels, xcb, ycb, style, transform)
    return b"\xff\x52\x00\x0c" + bytes([0, 0, 0, 1, 0, 5, 4, 4, 0, transform])


def coc(component: int, transform: int) -> bytes:  # Lcoc 9: Ccoc, Scoc, SPcoc
    return b"\xff\x53\x00\x09" + bytes([component, 0, 5, 4, 4, 0, transform])


def test_transformation_reads_cod_then_a_coc_for_component_0_and_refuses_broken_headers():
    assert jpeg2000.transformation(header(cod(1))) == 1
    assert jpeg2000.transformation(header(cod(1), coc(0, 0))) == jpeg2000.IRREVERSIBLE  # COC overrides
    assert jpeg2000.transformation(header(coc(0, 0), cod(1))) == jpeg2000.IRREVERSIBLE  # in any order
    assert jpeg2000.transformation(header(cod(1), coc(1, 0))) == 1  # another component's
    assert jpeg2000.transformation(header(b"\xff\x52\x00\x00" + cod(0))) is None  # a zero length
    assert jpeg2000.transformation(header(b"\xff\x52\x00\x04\x00\x00")) is None  # a COD too short
    assert jpeg2000.transformation(header(cod(0))[:20]) is None  # cut inside COD


@pytest.mark.parametrize("ts,expected", [(JPEG2000, jpeg2000.IRREVERSIBLE), (JPEG2000Lossless, 1)])
def test_transformation_is_read_from_the_cod_marker(tmp_path, ts, expected):
    frame = single_frame(read_dataset(compressed(tmp_path / "j.dcm", smooth(), ts)))
    assert jpeg2000.transformation(frame) == expected
    assert jpeg2000.kernel(frame) == ("cdf97" if expected == jpeg2000.IRREVERSIBLE else "box")
    assert jpeg2000.transformation(frame[:40]) is None  # cut before COD: read as blocks
    assert jpeg2000.transformation(b"not a codestream") is None


def test_irreversible_reduced_frame_rebuilds_the_full_decode(tmp_path):
    """openjpeg's level-2 samples of a 9/7 codestream, rebuilt by the synthesis, give back its
    full decode (the sample positions and the filter both right); blocks miss it tenfold."""
    path = compressed(tmp_path / "j.dcm", smooth(), JPEG2000)
    spec = dict(SPEC, voi=False)
    full, red = read_dicom(path, voi=False), read_dicom(path, voi=False, decode_for=spec)
    assert (red.decoded, red.kernel) == ("jpeg2000 1/4", "cdf97")
    rebuilt = synthesis(256, 4) @ red.image @ synthesis(320, 4).T
    blocks = np.repeat(np.repeat(red.image, 4, 0), 4, 1)[1:, 1:]  # sample k covers pixels 4k - 1 to 4k + 2
    assert np.abs(rebuilt - full.image).mean() < 0.003
    assert np.abs(blocks - full.image[:255, :319]).mean() > 3 * np.abs(rebuilt - full.image).mean()
    np.testing.assert_allclose(preprocess(red.image, spec, red.shape, red.origin, red.kernel),
                               preprocess(full.image, spec), atol=0.01)


def test_resizing_reads_flat_samples_as_flat_and_refuses_unknown_kernels():
    flat = np.full((65, 81), 0.25, np.float32)
    np.testing.assert_allclose(resize_square(flat, 16, "stretch", shape=(257, 321), kernel="cdf97"), 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="kernel"):
        resize_square(flat, 16, "stretch", shape=(257, 321), kernel="lanczos")


def test_very_long_axes_read_the_samples_as_blocks():
    """An axis over MAX_SYNTHESIS_AXIS pixels (192 x 349,525 fits the pixel cap) is read as blocks:
    its combs would take hundreds of megabytes."""
    for n_full, factor in [(20000, 128), (349525, 128)]:
        taps, weights = _axis_taps(192, n_full, factor, -(factor - 1) / 2, "cdf97")
        expected = _area_taps(192, n_full, factor, -(factor - 1) / 2)
        np.testing.assert_array_equal(taps, expected[0])
        np.testing.assert_array_equal(weights, expected[1])
    assert _axis_taps(192, 2972, 8, -3.5, "cdf97")[0] is _synthesis_taps(192, 2972, 8)[0]  # a film's: synthesis


def test_wide_boxes_read_the_samples_as_blocks():
    """A 16 x 100,000 frame at 1/8 to a 32-pixel letterbox: each output pixel's box spans 390
    samples along the long axis, where the synthesis's shape no longer matters and its combs would
    take hundreds of megabytes: that axis is read as blocks, the short one still rebuilt."""
    columns = np.random.default_rng(2).random(12500).astype(np.float32)
    image = np.repeat(columns[None], 2, axis=0)  # flat along the short axis: its kernel cannot show
    wide = resize_square(image, 32, shape=(16, 100000), origin=-3.5, kernel="cdf97")
    np.testing.assert_allclose(wide, resize_square(image, 32, shape=(16, 100000), origin=-3.5, kernel="box"), atol=1e-6)
