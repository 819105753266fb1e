"""radedge: on-premises labels for chest X-ray reports and radiographs.

    >>> from radedge import ReportLabeler
    >>> labeler = ReportLabeler.load("default")
    >>> labeler(["No acute cardiopulmonary process."])[0].labels

Importing radedge is cheap: the report and image pipelines load on first use, and nothing here
ever imports torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import RadEdgeError
from .labels import CLASSES, FINDINGS

__version__ = "0.1.0"

_LAZY = {"ReportLabeler": "radedge.reports.labeler", "ImageScorer": "radedge.images.scorer"}

if TYPE_CHECKING:  # pragma: no cover
    from .images.scorer import ImageScorer
    from .reports.labeler import ReportLabeler


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radedge' has no attribute {name!r}")


__all__ = ["CLASSES", "FINDINGS", "ImageScorer", "RadEdgeError", "ReportLabeler", "__version__"]
