"""The rule labeler (radedge.reports.rules) as a teacher: hard labels, no soft probabilities."""
from __future__ import annotations

from typing import Any, Sequence

from radedge.reports.rules import RuleLabeler

from . import TeacherLabel


class RulesTeacher:
    """Labels the text it is given with the packaged lexicons (callers pass the findings sections)."""

    name = "rules"

    def __init__(self, lexicon_dir: str | None = None) -> None:
        self.labeler = RuleLabeler.load(lexicon_dir)
        self.lexicon_dir = lexicon_dir

    @property
    def provenance(self) -> dict[str, Any]:
        return {"teacher": "rules", "lexicons": self.lexicon_dir or "radedge/lexicons (packaged)"}

    def label(self, texts: Sequence[str]) -> list[TeacherLabel]:
        return [TeacherLabel(self.labeler.classify(t)) for t in texts]

    def close(self) -> None:
        pass
