"""radedge.images.preprocess: the one preprocessing shared by training and serving."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from radedge.images.preprocess import (
    ImageLoadError, check_spec, grey_from_colour, load_image, preprocess, preprocess_batch, resize_square,
)

SPEC = {"size": 32, "resize": "letterbox", "channels": 3, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def test_letterbox_keeps_aspect_and_pads_black():
    image = np.ones((100, 50), np.float32)
    out = resize_square(image, 32, "letterbox")
    assert out.shape == (32, 32)
    cols = np.where(out.max(axis=0) > 0)[0]
    assert cols.min() == 8 and cols.max() == 23  # 16 columns wide, centred
    assert out[:, :8].max() == 0 and out[:, 24:].max() == 0


def test_stretch_fills_the_square():
    out = resize_square(np.ones((100, 50), np.float32), 32, "stretch")
    assert out.shape == (32, 32)
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)


def test_shrinking_uses_inter_area():
    rng = np.random.default_rng(0)
    image = rng.random((128, 128), dtype=np.float32)
    expected = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(resize_square(image, 32, "stretch"), expected)


def test_channels_and_normalisation():
    image = np.full((40, 40), 0.75, np.float32)
    out = preprocess(image, SPEC)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)  # (0.75 - 0.5) / 0.25
    one = preprocess(image, {"size": 16, "channels": 1, "mean": [0.0], "std": [1.0], "resize": "stretch"})
    assert one.shape == (1, 16, 16)
    np.testing.assert_allclose(one, 0.75)


def test_per_channel_mean_std():
    out = preprocess(np.zeros((8, 8), np.float32), {"size": 8, "channels": 3, "mean": [0.1, 0.2, 0.3],
                                                    "std": [1.0, 2.0, 4.0], "resize": "stretch"})
    np.testing.assert_allclose(out[:, 0, 0], [-0.1, -0.1, -0.075])


def test_batch_stacks():
    batch = preprocess_batch([np.zeros((10, 20), np.float32), np.ones((30, 5), np.float32)], SPEC)
    assert batch.shape == (2, 3, 32, 32)
    assert preprocess_batch([], SPEC).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("bad", [{}, {"size": 0}, {"size": 8, "resize": "crop"}, {"size": 8, "channels": 2},
                                 {"size": 8, "channels": 3, "mean": [0, 0]}, {"size": 8, "std": [0]}])
def test_bad_specs_are_refused(bad):
    with pytest.raises(ValueError):
        check_spec(bad)


def test_preprocess_needs_a_2d_image():
    with pytest.raises(ValueError):
        preprocess(np.zeros((4, 4, 3), np.float32), SPEC)


def test_load_png_8_and_16_bit(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((10, 12), 51, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((10, 12), 65535, np.uint16))
    a, b = load_image(tmp_path / "a.png"), load_image(tmp_path / "b.png")
    assert a.shape == (10, 12) and a.dtype == np.float32
    np.testing.assert_allclose(a, 0.2)
    np.testing.assert_allclose(b, 1.0)


def test_grey_stored_as_rgb_is_converted_and_colour_refused(tmp_path):
    grey = np.dstack([np.full((8, 8), 100, np.uint8)] * 3)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    np.testing.assert_allclose(load_image(tmp_path / "grey.png"), 100 / 255, atol=1e-6)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 2] = 255
    cv2.imwrite(str(tmp_path / "red.png"), colour)
    with pytest.raises(ImageLoadError, match="colour image"):
        load_image(tmp_path / "red.png")
    with pytest.raises(ImageLoadError):
        grey_from_colour(colour.astype(np.float32) / 255)


def test_unreadable_image(tmp_path):
    (tmp_path / "x.png").write_text("not a picture")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(tmp_path / "x.png")
