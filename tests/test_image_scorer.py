"""ImageScorer: DICOM, PNG and array inputs, thresholds, batching, thread safety."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from tests.dicom_factory import ramp, write_image, write_sr
from tests.tiny_models import rewrite_manifest

from radedge import ImageScorer
from radedge.errors import ManifestError, ModelNotFoundError
from radedge.images.preprocess import preprocess
from radedge.labels import FINDINGS


def test_paths_and_arrays(tiny_image_model, tmp_path):
    scorer = ImageScorer.load(str(tiny_image_model))
    dcm = write_image(tmp_path / "a.dcm")
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), (ramp(top=255, dtype=np.uint8)))
    results = scorer([dcm, png, ramp(top=255, dtype=np.uint8), write_sr(tmp_path / "sr.dcm"), tmp_path / "none.dcm"])
    assert [r.status for r in results] == ["scored", "scored", "scored", "skipped", "error"]
    for r in results[:3]:
        assert r.probabilities.shape == (14,) and r.probabilities.dtype == np.float32
        assert r.labels.shape == (14,) and set(r.labels) <= {0, 1}
        assert list(r.findings()) == list(FINDINGS)
    assert results[0].sop_uid and results[1].sop_uid == ""
    assert results[2].source == "array[2]"
    assert "no pixel data" in results[3].reason and results[3].probabilities is None
    assert results[4].error_type == "UnreadableFileError" and "no such file" in results[4].reason
    # the same pixels give the same scores whatever the container
    np.testing.assert_allclose(results[1].probabilities, results[2].probabilities, atol=1e-6)


def test_dicom_content_under_a_picture_name_is_read_as_dicom(tiny_image_model, tmp_path):
    # Found by content, whatever the name: every layout the DICOM reader accepts, including a
    # file that starts directly with its file meta (no preamble, no "DICM").
    scorer = ImageScorer.load(str(tiny_image_model))
    good = write_image(tmp_path / "a.dcm")
    reference = scorer(good)  # one input, one result
    for name, data in (("part10.png", good.read_bytes()), ("dicm.png", good.read_bytes()[128:]),
                       ("meta.png", good.read_bytes()[132:])):
        (tmp_path / name).write_bytes(data)
        result = scorer(tmp_path / name)
        assert result.status == "scored", (name, result.reason)
        assert result.sop_uid == reference.sop_uid
        np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=1e-6)


def test_single_input_and_matches_direct_inference(tiny_image_model):
    scorer = ImageScorer.load(str(tiny_image_model))
    image = np.random.default_rng(1).random((50, 40)).astype(np.float32)
    result = scorer(image)
    direct = scorer.model.backend.run({"pixels": preprocess(image, scorer.spec)[None]})["probs"][0]
    np.testing.assert_allclose(result.probabilities, direct, rtol=1e-6)


def test_thresholds_come_from_the_manifest(tiny_image_model):
    manifest = json.loads((tiny_image_model / "manifest.json").read_text())
    manifest["thresholds"] = {name: (0.0 if i % 2 else 1.01) for i, name in enumerate(FINDINGS)}
    rewrite_manifest(tiny_image_model, manifest)
    result = ImageScorer.load(str(tiny_image_model))(np.full((20, 20), 0.5, np.float32))
    assert list(result.labels) == [i % 2 for i in range(14)]
    assert result.positive() == [name for i, name in enumerate(FINDINGS) if i % 2]


def test_batching_does_not_change_results(tiny_image_model):
    images = [np.random.default_rng(i).random((30, 30)).astype(np.float32) for i in range(7)]
    one = ImageScorer.load(str(tiny_image_model), batch_size=1)(images)
    many = ImageScorer.load(str(tiny_image_model), batch_size=3)(images)
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5)


def test_thread_safe(tiny_image_model):
    scorer = ImageScorer.load(str(tiny_image_model), batch_size=2)
    images = [np.random.default_rng(i).random((40, 30)).astype(np.float32) for i in range(6)]
    expected = [r.probabilities for r in scorer(images)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: [r.probabilities for r in scorer(images)], range(8)))
    for out in outs:
        for a, b in zip(out, expected):
            np.testing.assert_array_equal(a, b)


def test_views_option(tiny_image_model, tmp_path):
    lateral = write_image(tmp_path / "l.dcm", view="LL")
    assert ImageScorer.load(str(tiny_image_model))(lateral).status == "skipped"
    assert ImageScorer.load(str(tiny_image_model), views="PA,AP,LL")(lateral).status == "scored"


def test_bad_array_is_a_per_item_error(tiny_image_model):
    results = ImageScorer.load(str(tiny_image_model))([np.zeros((2, 3, 4, 5)), np.zeros((8, 8))])
    assert [r.status for r in results] == ["error", "scored"]


def test_wrong_models_are_refused(tiny_report_model, tmp_path):
    with pytest.raises(ManifestError):
        ImageScorer.load(str(tiny_report_model))
    with pytest.raises(ModelNotFoundError):
        ImageScorer.load(str(tmp_path / "nothing"))


def test_prepared_image_pickles_repeated_channels_once():
    import pickle

    from radedge.images.scorer import PreparedImage

    grey = np.random.default_rng(0).random((1, 16, 16), dtype=np.float32)
    same = PreparedImage("a", pixels=np.repeat(grey, 3, axis=0), sop_uid="1.2")
    differ = PreparedImage("b", pixels=np.concatenate([grey, grey + 1, grey]))
    for item in (same, differ, PreparedImage("c", status="skipped", reason="why")):
        back = pickle.loads(pickle.dumps(item))
        assert back.outcome() == item.outcome()
        assert (back.pixels is None) == (item.pixels is None)
        if item.pixels is not None:
            assert back.pixels.dtype == np.float32 and np.array_equal(back.pixels, item.pixels)
    # the grey image travels once when the channels repeat it, all channels otherwise
    assert len(pickle.dumps(same)) < len(pickle.dumps(differ)) / 2
