"""benchmarks/margins.py's bookkeeping (no score asserted: the figures come from the command): the
crops, which levels each margin is charged with, and its options; plus one real file end to end."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import JPEG2000

from benchmarks.margins import centre_crop, levels_of, main, worst_by_margin
from radedge.images.codecs import jpeg2000
from tests.test_dicom_decode import SPEC, compressed, smooth


def test_centre_crop_keeps_the_aspect_and_the_centre():
    pixels = np.arange(400 * 300).reshape(400, 300)
    crop = centre_crop(pixels, 200)
    assert crop.shape == (200, 150) and crop[0, 0] == pixels[100, 75]
    assert centre_crop(pixels, 401) is None  # never enlarged


def test_worst_by_margin_charges_each_margin_with_the_levels_it_picks():
    rows = [{"kind": "j2k-lossless", "max_diff": 0.05, "margins": [1.0]},
            {"kind": "j2k-lossless", "max_diff": 0.01, "margins": [1.1, 1.2]},
            {"kind": "j2k-lossy", "max_diff": 0.025, "margins": [1.0, 1.1]},
            {"kind": "j2k-lossy", "max_diff": 0.002, "margins": [1.2]}]
    by = {e["margin"]: e for e in worst_by_margin(rows)}
    assert by[1.0]["j2k-lossless"] == {"files": 1, "worst": 0.05, "over_0.02": 1, "over_0.03": 1}
    assert by[1.1]["j2k-lossy"] == {"files": 1, "worst": 0.025, "over_0.02": 1, "over_0.03": 0}
    assert by[1.2]["j2k-lossless"]["worst"] == 0.01 and by[1.2]["j2k-lossy"]["worst"] == 0.002


class _Scorer:  # the network's stand-in: the mean of its input, so any change in the pixels shows
    def infer(self, batch):
        return batch.mean(axis=(2, 3))


def test_levels_of_scores_each_distinct_level_once(tmp_path):
    path = compressed(tmp_path / "j.dcm", smooth(), JPEG2000)
    shipped = jpeg2000.MARGIN
    rows = levels_of(path, "smooth", "j2k-lossy", _Scorer(), dict(SPEC), [1.0, 1.5, 2.0, 4.0])
    assert jpeg2000.MARGIN == shipped  # each margin only for its own read
    decoded = [r["decoded"] for r in rows]
    assert len(decoded) == len(set(decoded)) >= 2  # 256 x 320 to 32: 1/8 at margin 1, 1/2 at 4
    assert sorted(m for r in rows for m in r["margins"]) == [1.0, 1.5, 2.0, 4.0]
    assert all(r["kernel"] == "cdf97" and r["max_diff"] < 0.05 for r in rows)
    as_blocks = levels_of(path, "smooth", "j2k-lossy", _Scorer(), dict(SPEC), [1.0], blocks=True)
    assert [r["kernel"] for r in as_blocks] == ["box"] and as_blocks[0]["decoded"] == rows[0]["decoded"]


@pytest.mark.parametrize("argv", [["--sides", "big"], ["--margins", "0.5"], ["--sides", "10"], ["--margins", ""]])
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
