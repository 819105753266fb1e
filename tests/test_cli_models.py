"""`radedge models list|verify`."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from radedge import registry
from radedge.cli import main


def test_cli_models_list_and_verify(tiny_report_model: Path, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_report_model.parent))
    r = CliRunner().invoke(main, ["models", "list"])
    assert r.exit_code == 0 and "tiny-report" in r.output
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_report_model)])
    assert r.exit_code == 0, r.output
    (tiny_report_model / "tokenizer.json").write_text("{}")
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_report_model)])
    assert r.exit_code == 2 and "sha256" in r.output
