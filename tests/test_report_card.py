"""export.reports.default.card: the model card is written from the measured cross-validation only."""
from __future__ import annotations

import pytest

from export.reports import select
from export.reports.default import card, choose_row, reading_of


def _cv() -> dict:
    fold = {"macro_f1": [0.77, 0.03], "six_mean": [0.87, 0.06], "no_finding_f1": [0.90, 0.05],
            "pneumothorax_f1": [0.74, 0.42]}
    pooled = {"macro_f1": [0.80, 0.78, 0.82], "six_mean": [0.90, 0.88, 0.92], "no_finding_f1": [0.91, 0.89, 0.93],
              "pneumothorax_f1": [0.897, 0.75, 0.97]}
    return {"folds": 5, "reports": 2285, "table": {"rules": fold, "x": fold}, "pooled": {"rules": pooled, "x": pooled}}


def test_card_has_fold_and_pooled_tables():
    info = {"cv_row": "x", "history": {"seconds": 10.0, "steps": 5}, "max_length": 128, "stride": 32,
            "command": "python -m export.reports.default", "reading": {"rules_findings": list(select.RULES_FINDINGS)}}
    measured = {"int8_fp32_label_agreement": 0.999, "parity_max_abs_logit_diff": 0.01}
    text = card("report-student", select.CANDIDATES["minilm-l3-adapter"], _cv(), measured, info)
    assert "| rules | 0.770 ± 0.030 | 0.870 ± 0.060 | 0.900 ± 0.050 | 0.740 ± 0.420 |" in text
    assert "| rules | 0.800 [0.780, 0.820] | 0.900 [0.880, 0.920] | 0.910 [0.890, 0.930] | 0.897 [0.750, 0.970] |" in text
    assert "rule/student combination" in text  # row x is not the candidate's own name
    assert "overrule" not in text and "(-1.0)" not in text  # no model_uncertain findings: not described


def test_card_names_the_model_uncertain_findings():
    info = {"cv_row": "x", "history": {"seconds": 10.0, "steps": 5}, "max_length": 128, "stride": 32,
            "command": "python -m export.reports.default",
            "reading": {"rules_findings": list(select.RULES_FINDINGS), "model_uncertain": ["Lung Opacity"]}}
    measured = {"int8_fp32_label_agreement": 0.999, "parity_max_abs_logit_diff": 0.01}
    text = card("report-student", select.CANDIDATES["minilm-l3-adapter"], _cv(), measured, info)
    assert "On Lung Opacity, a mention the rules read as positive and the model as uncertain" in text


def _table(**rows: tuple[float, float]) -> dict:
    return {"table": {name: {"macro_f1": [m, 0.0], "six_mean": [s, 0.0]} for name, (m, s) in rows.items()},
            "model_uncertain": {"s": ["Pneumonia"]}}


def test_auto_ships_the_better_combination_that_reaches_the_rules_never_the_pure_student():
    nf, unc = select.combination_name("s"), select.uncertain_name("s")
    cv = _table(rules=(0.80, 0.90), s=(0.85, 0.95), **{nf: (0.80, 0.90), unc: (0.82, 0.91)})
    assert choose_row(cv, "s", "auto") == unc
    assert reading_of(unc, "s", cv)["model_uncertain"] == ["Pneumonia"]
    assert "model_uncertain" not in reading_of(nf, "s", cv) and "rules_findings" in reading_of(nf, "s", cv)
    assert "rules_findings" not in reading_of("s", "s", cv)
    cv = _table(rules=(0.80, 0.90), s=(0.85, 0.95), **{nf: (0.80, 0.90), unc: (0.82, 0.89)})
    assert choose_row(cv, "s", "auto") == nf  # the uncertain row misses the six-finding mean
    assert choose_row(cv, "s", "student") == "s"
    cv = _table(rules=(0.80, 0.90), s=(0.85, 0.95), **{nf: (0.79, 0.90), unc: (0.82, 0.89)})
    with pytest.raises(SystemExit, match="nothing shipped"):
        choose_row(cv, "s", "auto")


def test_card_only_rewrites_the_shipped_card_from_its_manifest(tmp_path):
    """`--card-only` rebuilds the card from the manifest alone: on the shipped model it gives back
    the card that was shipped, and the model still verifies."""
    import shutil
    from pathlib import Path

    from export.reports.default import main
    from radedge import ReportLabeler

    shipped = Path(__file__).resolve().parents[1] / "models" / "report-student"
    out = tmp_path / "report-student"
    shutil.copytree(shipped, out)
    (out / "MODEL_CARD.md").write_text("stale\n", encoding="utf-8")
    assert main(["--card-only", "--out", str(out)]) == 0
    assert (out / "MODEL_CARD.md").read_text(encoding="utf-8") == (shipped / "MODEL_CARD.md").read_text(encoding="utf-8")
    ReportLabeler.load(out)  # sha256 of every file, the rewritten card's included
