"""Teachers that label reports for distillation: the on-site LLM (`llm`) and the rule labeler (`rules`).

Each teacher's `label(texts)` gives one `TeacherLabel` per report: hard classes `int8[14]`, optional soft
class probabilities `float32[14, 4]`, or an error string when the teacher could not label it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TeacherLabel:
    """One teacher's answer for one report; `error` set (and classes None) when it gave no valid answer."""

    classes: np.ndarray | None
    probs: np.ndarray | None = None
    error: str | None = None
