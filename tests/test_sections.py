"""Section extraction: which part of a report the labelers read."""
from __future__ import annotations

import json

import pytest

from conftest import need_data
from radedge.reports.sections import findings_text, split_sections


@pytest.mark.parametrize("text, expected", [
    ("COMPARISON: None.\n\nINDICATION: rule out pneumonia\n\nFINDINGS: Small effusion.\n\nIMPRESSION: Effusion.",
     "Small effusion.\n\nEffusion."),
    ("Findings: heart normal. Impression: no acute disease.", "heart normal.\n\nno acute disease."),  # inline
    ("FINDINGS\nHeart normal.\nIMPRESSION\nNo acute.", "Heart normal.\n\nNo acute."),  # header on its own line
    ("findings and impression: clear lungs.", "clear lungs."),
    ("INDICATION: cough\nFINDINGS/IMPRESSION: clear lungs.", "clear lungs."),
    ("FINDING: small effusion.", "small effusion."),
    ("IMPRESSIONS: effusion.", "effusion."),
    ("History: cough.\nCONCLUSION: effusion", "effusion"),
    ("INDICATION: fever\nOPINION: consolidation", "consolidation"),
])
def test_findings_and_impression_headers(text: str, expected: str) -> None:
    assert findings_text(text) == expected


def test_whole_text_without_headers() -> None:
    text = "Heart size: normal. Lungs clear.\nNo effusion."  # "Heart size:" is not a section header
    assert findings_text(text) == text


def test_context_sections_dropped_when_no_findings_header() -> None:
    text = "INDICATION: pneumonia?\nPA AND LATERAL VIEWS OF THE CHEST:\nLungs are clear."
    assert findings_text(text) == "Lungs are clear."
    assert "pneumonia" not in findings_text("HISTORY: pneumonia\nLungs are clear.")


@pytest.mark.parametrize("text", ["", "   \n  ", "FINDINGS:\n\nIMPRESSION:"])
def test_empty(text: str) -> None:
    assert findings_text(text) == ""


def test_deidentification_marks_are_not_headers() -> None:
    assert [s.header for s in split_sections("FINDINGS: XXXX: stable. Lungs clear.")] == ["FINDINGS"]


def test_openi_reports_keep_findings_and_impression() -> None:
    path = need_data("openi", "reports.jsonl")
    with path.open(encoding="utf-8") as f:
        reports = [json.loads(line) for line in f]
    for r in reports:
        want = "\n\n".join(part for part in (r["findings"], r["impression"]) if part)
        assert findings_text(r["text"]) == want, r["id"]
