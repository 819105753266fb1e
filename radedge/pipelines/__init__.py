"""The runtime's pipelines as library functions: what the commands run, one call each.

    >>> from radedge.pipelines import label_file, score_folder
    >>> label_file("reports.csv", "labels.csv", model="default")
    >>> score_folder("/data/pacs_export", "scores.jsonl", workers=2)

The per-batch steps (`label_batch`: reports and ids -> records; `score_files`: paths -> records)
are what a distributed engine maps over batches, so every engine writes the same records.
Submodules load on first use: a decoding worker process imports `workers` without the report model
code.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_getattr

_LAZY = {"label_batch": "reports", "label_file": "reports", "label_into": "reports",
         "score_files": "dicoms", "score_folder": "dicoms", "score_into": "dicoms"}

if TYPE_CHECKING:  # pragma: no cover
    from .dicoms import score_files, score_folder, score_into
    from .reports import label_batch, label_file, label_into

__getattr__ = lazy_getattr(__name__, {name: f"{__name__}.{module}" for name, module in _LAZY.items()})
__all__ = sorted(_LAZY)
