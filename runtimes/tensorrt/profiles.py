"""Optimisation profiles from a manifest: the range of shapes a plan accepts.

TensorRT plans are built for shape ranges (min, opt, max) on every dynamic axis. The manifest names
its dynamic axes symbolically (`batch`, `sequence`, DESIGN.md), so the ranges follow from it: batch
1..max_batch, sequence 1..the model's max_length (no report window is longer); kernels are tuned for
`opt`. Fixed axes (the image size, 14 findings) stay fixed.
"""
from __future__ import annotations

from dataclasses import dataclass

from radedge.manifest import Manifest

DEFAULT_MAX_BATCH = 32
DEFAULT_OPT_LENGTH = 128  # Open-i reports: mean 88 WordPiece tokens (PERFORMANCE-NOTES.md)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    min: Shape
    opt: Shape
    max: Shape

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def profile_shapes(manifest: Manifest, max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int | None = None,
                   max_length: int | None = None, opt_length: int | None = None) -> dict[str, ShapeRange]:
    """{input name: ShapeRange} for every manifest input; ValueError on impossible settings."""
    if max_batch < 1:
        raise ValueError(f"max batch must be at least 1, got {max_batch}")
    opt_batch = opt_batch or max(1, max_batch // 2)
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"opt batch {opt_batch} is outside 1..{max_batch}")
    seq_max = max_length or manifest.max_length
    ranges: dict[str, ShapeRange] = {}
    for spec in manifest.inputs:
        lo, mid, hi = [], [], []
        for dim in spec.shape:
            if dim == "batch":
                lo.append(1), mid.append(opt_batch), hi.append(max_batch)
            elif dim == "sequence":
                if not seq_max:
                    raise ValueError(f"input {spec.name!r} has a sequence axis but the manifest has no max_length "
                                     "and none was given")
                if manifest.max_length and seq_max > manifest.max_length:
                    raise ValueError(f"max length {seq_max} exceeds the model's max_length {manifest.max_length}")
                seq_opt = opt_length or min(seq_max, DEFAULT_OPT_LENGTH)
                if not 1 <= seq_opt <= seq_max:
                    raise ValueError(f"opt length {seq_opt} is outside 1..{seq_max}")
                lo.append(1), mid.append(seq_opt), hi.append(seq_max)
            else:
                lo.append(int(dim)), mid.append(int(dim)), hi.append(int(dim))
        ranges[spec.name] = ShapeRange(tuple(lo), tuple(mid), tuple(hi))
    return ranges


def covers(recorded: dict[str, dict[str, list[int]]], wanted: dict[str, ShapeRange]) -> bool:
    """Whether a plan built with `recorded` ranges (its sidecar) accepts every shape `wanted` allows."""
    for name, rng in wanted.items():
        have = recorded.get(name)
        if have is None:
            return False
        if any(h > w for h, w in zip(have["min"], rng.min)) or any(h < w for h, w in zip(have["max"], rng.max)):
            return False
    return True
