"""Throughput as a fraction of this machine's limit: FLOPs per item x items/s / measured peak.

FLOPs come from the model's ONNX graph (benchmarks/flops.py) at the batch size and sequence length
(report models) or the fixed image size the throughput was measured at, divided by the batch; the peak is the int8 one
for int8 graphs and the better of the two fp32 ones for fp32 graphs (benchmarks/peak.py). GPU rows
get no fraction: only a CPU peak is measured.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from .data import absolute
from .flops import count_flops


@lru_cache(maxsize=128)
def flops_per_item(onnx_path: str, sequence: int | None, batch: int = 1) -> float:
    """Matrix-product FLOPs per item (one report window of `sequence` tokens, or one image) in a batch of
    `batch`: counted for the whole batch and divided, since some products (e.g. DeBERTa's relative-position
    projections) are computed once per batch."""
    dims = {"batch": int(batch)}
    if sequence is not None:
        dims["sequence"] = int(sequence)
    return count_flops(absolute(onnx_path), dims)["total"] / batch


def peak_for(precision: str, device: str, peaks: Mapping[str, Any]) -> float | None:
    """GOP/s limit for a precision on the CPU, None where none was measured (GPU, fp16)."""
    if device != "cpu" or not peaks:
        return None
    if precision == "int8":
        return peaks.get("int8_gops")
    if precision == "fp32":
        return max(peaks.get("fp32_gflops") or 0, peaks.get("ort_fp32_gflops") or 0) or None
    return None


def annotate(row: dict[str, Any], onnx_path: str, sequence: int | None, throughput: float, precision: str,
             device: str, peaks: Mapping[str, Any], batch: int = 1) -> dict[str, Any]:
    """Add flops_per_item, achieved_gops and fraction_of_peak to a row (in place) and return it."""
    flops = flops_per_item(onnx_path, sequence, batch)
    achieved = flops * throughput / 1e9
    peak = peak_for(precision, device, peaks)
    row["flops_per_item"] = int(flops)
    row["achieved_gops"] = round(achieved, 2)
    row["peak_gops"] = peak
    row["fraction_of_peak"] = round(achieved / peak, 3) if peak else None
    return row
