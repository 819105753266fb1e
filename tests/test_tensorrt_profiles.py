"""runtimes.tensorrt.profiles: optimisation-profile shape ranges from a model's manifest."""
from __future__ import annotations

import pytest

from radedge.manifest import Manifest
from runtimes.tensorrt import profiles


# ---- profiles ------------------------------------------------------------------------------------
def test_profiles_from_report_manifest(tiny_report_model):
    m = Manifest.read(tiny_report_model)  # max_length 32, inputs [batch, sequence]
    shapes = profiles.profile_shapes(m, max_batch=16)
    for name in ("input_ids", "attention_mask"):
        assert shapes[name].min == (1, 1) and shapes[name].opt == (8, 32) and shapes[name].max == (16, 32)
    custom = profiles.profile_shapes(m, max_batch=4, opt_batch=1, max_length=24, opt_length=12)
    assert custom["input_ids"] == profiles.ShapeRange((1, 1), (1, 12), (4, 24))


def test_profiles_from_image_manifest_keep_fixed_axes(tiny_image_model):
    shapes = profiles.profile_shapes(Manifest.read(tiny_image_model), max_batch=8)
    assert shapes["pixels"] == profiles.ShapeRange((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))


@pytest.mark.parametrize("kwargs,message", [
    ({"max_batch": 0}, "at least 1"), ({"max_batch": 4, "opt_batch": 5}, "opt batch"),
    ({"max_length": 64}, "exceeds the model's max_length"), ({"opt_length": 40}, "opt length"),
])
def test_profile_errors(tiny_report_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        profiles.profile_shapes(Manifest.read(tiny_report_model), **kwargs)


def test_sequence_axis_needs_a_max_length(tiny_report_model):
    m = Manifest.read(tiny_report_model)
    m.max_length = None
    with pytest.raises(ValueError, match="no max_length"):
        profiles.profile_shapes(m)


def test_covers_compares_recorded_ranges(tiny_report_model):
    m = Manifest.read(tiny_report_model)
    recorded = {k: v.to_dict() for k, v in profiles.profile_shapes(m, max_batch=16).items()}
    assert profiles.covers(recorded, profiles.profile_shapes(m, max_batch=8))
    assert not profiles.covers(recorded, profiles.profile_shapes(m, max_batch=32))
    assert not profiles.covers({}, profiles.profile_shapes(m))
