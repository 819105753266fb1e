"""radedge.eval and `radedge eval`: gold / prediction formats, alignment, known P/R/F1."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.paths import need_data
from radedge import eval as rad_eval
from radedge.cli import main
from radedge.labels import FINDINGS

OPENI_HEADER = ("id,Atelectasis,Cardiomegaly,Effusion,Infiltration,Mass,Nodule,Pneumonia,Pneumothorax,"
                "Consolidation,Edema,Emphysema,Fibrosis,Pleural_Thickening,Hernia,Normal")


def chexpert_csv(path: Path, rows: list[dict[str, str]], reports: bool = True, extra: str = "") -> Path:
    cols = (["Reports"] if reports else ["id"]) + list(FINDINGS) + ([extra] if extra else [])
    lines = [",".join(cols)]
    for i, row in enumerate(rows):
        first = f"report {i}" if reports else row.get("id", f"r{i}")
        lines.append(",".join([first] + [row.get(f, "") for f in FINDINGS] + (["boom"] if extra else [])))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def chexpert_pair(tmp_path: Path) -> tuple[Path, Path]:
    # Cardiomegaly gold: 1, 1, 0, -1, ''; pred: 1, 0, 1, -1, 1
    # positive: tp 1, fp 2, fn 1 -> P 1/3, R 1/2, F1 0.4
    # negative: gold 0 at row 2, pred 0 at row 1 -> tp 0, fp 1, fn 1 -> F1 0
    # uncertain: tp 1 -> P 1, R 1
    gold = [{"Cardiomegaly": v} for v in ("1.0", "1.0", "0.0", "-1.0", "")]
    pred = [{"Cardiomegaly": v} for v in ("1.0", "0.0", "1.0", "-1.0", "1.0")]
    return chexpert_csv(tmp_path / "gold.csv", gold), chexpert_csv(tmp_path / "pred.csv", pred, extra="Note")


def test_chexpert_gold_known_scores(chexpert_pair: tuple[Path, Path]) -> None:
    result = rad_eval.evaluate(*chexpert_pair)
    pos = result.scores["positive"]["Cardiomegaly"]
    assert (pos.tp, pos.fp, pos.fn) == (1, 2, 1)
    assert pos.precision == pytest.approx(1 / 3) and pos.recall == pytest.approx(0.5) and pos.f1 == pytest.approx(0.4)
    assert result.scores["negative"]["Cardiomegaly"].f1 == 0.0
    unc = result.scores["uncertain"]["Cardiomegaly"]
    assert (unc.precision, unc.recall, unc.f1) == (1.0, 1.0, 1.0)
    # macro over findings with a gold instance of the class: only Cardiomegaly has one
    assert result.macro["positive"]["f1"] == pytest.approx(0.4) and result.macro["positive"]["findings"] == 1
    assert result.macro_f1 == pytest.approx(0.4)
    assert "Cardiomegaly" in result.table()
    assert json.loads(json.dumps(result.to_dict()))["scores"]["positive"]["Cardiomegaly"]["tp"] == 1


def test_chexpert_gold_with_some_columns_scores_only_those(tmp_path: Path) -> None:
    gold = tmp_path / "gold5.csv"
    gold.write_text("Reports,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n"
                    "a,1.0,,,,0.0\nb,,1.0,,,1.0\n")
    pred = chexpert_csv(tmp_path / "p.csv", [{"Atelectasis": "1.0", "Pleural Effusion": "0.0"},
                                             {"Cardiomegaly": "1.0", "Pleural Effusion": "-1.0"}])
    result = rad_eval.evaluate(gold, pred)
    assert result.kind == "chexpert"
    assert set(result.scores["positive"]) == {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                                              "Pleural Effusion"}
    assert result.scores["positive"]["Pleural Effusion"].recall == 0.0
    assert result.scores["negative"]["Pleural Effusion"].f1 == 1.0


def test_macro_is_the_mean_over_findings(tmp_path: Path) -> None:
    gold = [{"Edema": "1.0", "Fracture": "1.0"}, {"Edema": "1.0"}]
    pred = [{"Edema": "1.0", "Fracture": ""}, {"Edema": "1.0"}]  # Edema F1 1, Fracture F1 0
    result = rad_eval.evaluate(chexpert_csv(tmp_path / "g.csv", gold), chexpert_csv(tmp_path / "p.csv", pred))
    assert result.macro["positive"]["f1"] == pytest.approx(0.5)
    assert result.micro["positive"]["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))


def openi_gold(path: Path, rows: list[tuple[str, dict[str, int]]]) -> Path:
    names = OPENI_HEADER.split(",")[1:]
    lines = [OPENI_HEADER] + [",".join([rid] + [str(flags.get(n, 0)) for n in names]) for rid, flags in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, records: list[tuple[str, dict[str, float | None]]]) -> Path:
    path.write_text("".join(json.dumps({"id": rid, "labels": labels, "error": None}) + "\n" for rid, labels in records))
    return path


def test_openi_gold_positive_only_with_mapping(tmp_path: Path) -> None:
    gold = openi_gold(tmp_path / "gold.csv", [
        ("a", {"Mass": 1}), ("b", {"Nodule": 1, "Effusion": 1}), ("c", {"Normal": 1}), ("d", {"Effusion": 1}),
    ])
    pred = write_jsonl(tmp_path / "pred.jsonl", [  # any order: aligned by id
        ("d", {"Pleural Effusion": -1.0}),          # uncertain counts as not positive
        ("c", {"No Finding": 1.0}),
        ("b", {"Lung Lesion": 1.0, "Pleural Effusion": 1.0}),
        ("a", {"Lung Lesion": 0.0}),
    ])
    result = rad_eval.evaluate(gold, pred)
    assert result.kind == "openi" and list(result.scores) == ["positive"]
    lesion = result.scores["positive"]["Lung Lesion"]  # Mass or Nodule
    assert (lesion.tp, lesion.fp, lesion.fn) == (1, 0, 1)
    effusion = result.scores["positive"]["Pleural Effusion"]
    assert (effusion.tp, effusion.fn) == (1, 1)
    assert "Fracture" not in result.scores["positive"]  # no ChestX-ray14 source: not scored
    # macro over the mapped findings with >= 1 gold positive: Lung Lesion, Pleural Effusion, No Finding
    assert result.macro["positive"]["findings"] == 3
    assert result.macro_f1 == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))
    assert result.chestxray8["No Finding"] == {"ours": 1.0, "published": 0.93}
    assert result.chestxray8["mean"]["published"] == pytest.approx(0.87, abs=0.005)
    # a subset of ids
    sub = rad_eval.evaluate(gold, pred, ids=["b", "c"])
    assert sub.n_reports == 2 and sub.scores["positive"]["Lung Lesion"].recall == 1.0


def test_alignment_errors(tmp_path: Path, chexpert_pair: tuple[Path, Path]) -> None:
    gold_path, _ = chexpert_pair
    short = chexpert_csv(tmp_path / "short.csv", [{"Cardiomegaly": "1.0"}])
    with pytest.raises(ValueError, match="1 prediction rows for 5 gold rows"):
        rad_eval.evaluate(gold_path, short)
    gold = openi_gold(tmp_path / "g.csv", [("a", {}), ("b", {})])
    with pytest.raises(ValueError, match="no prediction for 1 gold ids"):
        rad_eval.evaluate(gold, write_jsonl(tmp_path / "p.jsonl", [("a", {})]))
    with pytest.raises(ValueError, match="not in the gold"):
        rad_eval.evaluate(gold, write_jsonl(tmp_path / "q.jsonl", [("a", {}), ("b", {})]), ids=["zzz"])
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not a CheXpert gold"):
        rad_eval.read_gold(bad)
    bad_value = chexpert_csv(tmp_path / "bv.csv", [{"Edema": "2.0"}])
    with pytest.raises(ValueError, match="row 2, column 'Edema'"):
        rad_eval.read_gold(bad_value)


def test_cli_eval_table_json_and_ids(chexpert_pair: tuple[Path, Path], tmp_path: Path) -> None:
    gold, pred = chexpert_pair
    runner = CliRunner()
    out = runner.invoke(main, ["eval", "--gold", str(gold), "--pred", str(pred)])
    assert out.exit_code == 0, out.output
    assert "Cardiomegaly" in out.output and "macro" in out.output
    out = runner.invoke(main, ["eval", "--gold", str(gold), "--pred", str(pred), "--format", "json"])
    assert json.loads(out.output)["scores"]["positive"]["Cardiomegaly"]["fp"] == 2
    ids = tmp_path / "ids.txt"
    ids.write_text("# first two rows\n1\n2\n")  # a gold without ids numbers its rows from 1
    out = runner.invoke(main, ["eval", "--gold", str(gold), "--pred", str(pred), "--ids", str(ids), "--format", "json"])
    assert json.loads(out.output)["n_reports"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing here\n")
    out = runner.invoke(main, ["eval", "--gold", str(gold), "--pred", str(bad)])
    assert out.exit_code == 2 and "missing columns" in out.output


def test_openi_gold_file_reads_with_its_counts() -> None:
    gold = rad_eval.read_gold(need_data("openi", "gold-dev.csv"))
    assert gold.kind == "openi" and len(gold.ids) == 2285
    positives = dict(zip(FINDINGS, (gold.classes == 1).sum(axis=0).tolist()))
    # shared/data/openi/README.md dev counts: Mass or Nodule -> Lung Lesion; Normal -> No Finding
    assert positives["Cardiomegaly"] == 204 and positives["No Finding"] == 828
    assert positives["Atelectasis"] == 189 and positives["Pleural Effusion"] == 87


@pytest.mark.slow
def test_cli_label_reports_then_eval_on_openi(tmp_path: Path) -> None:
    """End to end: `radedge label-reports --model rules` output scored by `radedge eval` equals the
    in-process score of the rule labeler (the CLI reads the same findings sections)."""
    reports = need_data("openi", "reports.jsonl")
    gold = need_data("openi", "gold-dev.csv")
    out = tmp_path / "labels.jsonl"
    runner = CliRunner()
    res = runner.invoke(main, ["label-reports", str(reports), "--text-field", "text", "-o", str(out),
                               "--model", "rules", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["eval", "--gold", str(gold), "--pred", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    scored = json.loads(res.output)
    assert scored["n_reports"] == 2285 and scored["kind"] == "openi"

    from radedge.reports.rules import RuleLabeler
    from radedge.reports.sections import findings_text
    rules = RuleLabeler.load()
    records = [json.loads(line) for line in reports.read_text(encoding="utf-8").splitlines()]
    pred = np.stack([rules.classify(findings_text(r["text"])) for r in records])
    g = rad_eval.read_gold(gold)
    direct = rad_eval.evaluate(g, rad_eval.align(g, [r["id"] for r in records], pred))
    assert scored["macro"]["positive"]["f1"] == pytest.approx(direct.macro_f1)


def test_blank_lines_in_csv_are_not_rows(tmp_path: Path) -> None:
    # A blank line (here a trailing one, as editors leave) is not a report, as pandas reads such files;
    # it used to crash on the id column (IndexError) or count as an extra all-blank gold row.
    rows = [{"id": "a", "Cardiomegaly": "1.0"}, {"id": "b", "Cardiomegaly": "0.0"}]
    gold = chexpert_csv(tmp_path / "gold.csv", rows, reports=False)
    gold.write_text(gold.read_text() + "\n")
    pred = chexpert_csv(tmp_path / "pred.csv", rows, reports=False)
    pred.write_text(pred.read_text().replace("\n", "\n\n", 1))
    result = rad_eval.evaluate(gold, pred)
    assert result.n_reports == 2 and result.scores["positive"]["Cardiomegaly"].f1 == 1.0
    plain = chexpert_csv(tmp_path / "plain.csv", [{"Cardiomegaly": "1.0"}])
    plain.write_text(plain.read_text() + "\n")
    assert len(rad_eval.read_gold(plain).ids) == 1
    assert CliRunner().invoke(main, ["eval", "--gold", str(gold), "--pred", str(pred)]).exit_code == 0


def test_chestxray14_mapping_merges_mass_and_nodule():
    out = rad_eval.map_chestxray14({"Mass": 0, "Nodule": 1, "Effusion": 1, "Emphysema": 1})
    assert out["Lung Lesion"] == 1 and out["Pleural Effusion"] == 1 and "Emphysema" not in out
