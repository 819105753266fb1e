"""radedge: on-premises labels for chest X-ray reports and radiographs.

    >>> from radedge import ReportLabeler
    >>> labeler = ReportLabeler.load("default")
    >>> labeler(["No acute cardiopulmonary process."])[0].labels

Importing radedge is cheap: the report and image pipelines load on first use, and nothing here
ever imports torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import RadEdgeError
from .labels import CLASSES, FINDINGS
from .lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {"ReportLabeler": "radedge.reports.labeler", "ImageScorer": "radedge.images.scorer"}

if TYPE_CHECKING:  # pragma: no cover
    from .images.scorer import ImageScorer
    from .reports.labeler import ReportLabeler


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["CLASSES", "FINDINGS", "ImageScorer", "RadEdgeError", "ReportLabeler", "__version__"]
