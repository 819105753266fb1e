"""Section extraction: which part of a report the labelers read."""
from __future__ import annotations

import json

import pytest

from tests.paths import need_data
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


@pytest.mark.parametrize("text", [
    "COMPARISON: None.\r\n\r\nINDICATION: rule out pneumonia\r\n\r\nFINDINGS: Small effusion.\r\n\r\nIMPRESSION: Effusion.",
    "  Heart size: normal. Lungs clear.\nNo effusion.  ",
    "INDICATION: pneumonia?\nPA AND LATERAL VIEWS OF THE CHEST:\nLungs are clear.\nNOTE: caf\u00e9.",
    "", "FINDINGS:\n\nIMPRESSION:",
])
def test_read_text_offsets_are_the_report_s(text: str) -> None:
    from radedge.reports.sections import SEPARATOR, read_text

    read = read_text(text)
    assert read.text == findings_text(text)
    assert SEPARATOR.join(text[s:e] for s, e in read.spans) == read.text
    for (s, e), start in zip(read.spans, read.starts):  # every part maps back onto itself
        assert read.to_report(start, start + e - s) == [(s, e)]
    if read.text:  # a range over the separator gives one span per section, separators dropped
        assert read.to_report(0, len(read.text)) == list(read.spans)
        assert read.to_report(3, 3) == []


def test_read_text_maps_a_word_back() -> None:
    from radedge.reports.sections import read_text

    text = "HISTORY: cough\r\nFINDINGS: no effusion\r\nIMPRESSION: \u0130\u0130 normal"
    read = read_text(text)
    for word in ("effusion", "normal"):
        i = read.text.index(word)
        [(s, e)] = read.to_report(i, i + len(word))
        assert text[s:e] == word


def test_caps_subheaders_inside_findings_are_read_with_their_header() -> None:
    text = ("INDICATION: cough\nFINDINGS:\nSUPPORT DEVICES: None.\nLUNGS: Clear.\n\n"
            "IMPRESSION: Normal.\nRECOMMENDATION: follow-up CT")
    assert findings_text(text) == "SUPPORT DEVICES: None.\n\nLUNGS: Clear.\n\nNormal."
    # before any findings header, an unknown caps header is still not read when FINDINGS exists
    assert findings_text("PA AND LATERAL VIEWS:\nportable\nFINDINGS: clear") == "clear"
