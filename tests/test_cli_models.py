"""`radedge models list|verify`."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from radedge import registry
from radedge.cli import main
from radedge.manifest import Manifest


def test_cli_models_list_and_verify(tiny_report_model: Path, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_report_model.parent))
    r = CliRunner().invoke(main, ["models", "list"])
    assert r.exit_code == 0 and "tiny-report" in r.output
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_report_model)])
    assert r.exit_code == 0, r.output
    (tiny_report_model / "tokenizer.json").write_text("{}")
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_report_model)])
    assert r.exit_code == 2 and "sha256" in r.output


def test_models_list_shows_each_licence_and_the_rule_labeler() -> None:
    from tests.paths import ROOT

    r = CliRunner().invoke(main, ["models", "list"])
    rows = {line.split()[0]: line for line in r.output.splitlines() if line.strip()}
    assert r.exit_code == 0 and rows["rules"].split()[3] == "Apache-2.0", r.output
    for name in ("report-student", "image-vit"):  # the shipped models: their training data's terms
        licence = Manifest.read(ROOT / "models" / name).licence
        assert licence is not None and licence.startswith("CC-BY-NC-") and licence in rows[name], rows[name]
    assert not list((ROOT / "models").glob("*/*.fp32.onnx"))  # the wheel ships only what the runtime loads
