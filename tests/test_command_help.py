"""Every training and benchmark command (`python -m export.*`, `python -m benchmarks.*`) names itself
as typed in its usage line and has help for every option; a bad input is one line, not a traceback."""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from tests.paths import ROOT

COMMANDS = ["export.images.compare", "export.images.default", "export.images.evaluate", "export.images.train",
            "export.reports.default", "export.reports.distill", "export.reports.gold", "export.reports.onnx",
            "export.reports.pseudolabel", "export.reports.select", "benchmarks.run", "benchmarks.accuracy",
            "benchmarks.certainty", "benchmarks.dicom", "benchmarks.ood", "benchmarks.peers",
            "benchmarks.report.readme"]
TYPED = {"benchmarks.run": "benchmarks", "benchmarks.report.readme": "benchmarks.report"}


class Parsed(Exception):
    """Raised instead of parsing, carrying the parser a command built."""


def parser_of(module: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Parsed) as caught:
        importlib.import_module(module).main([])
    return caught.value.args[0]


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser, *(p for sub in subs for child in sub.choices.values() for p in parsers(child))]


@pytest.mark.parametrize("module", COMMANDS)
def test_usage_names_the_command_and_every_option_has_help(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    top = parser_of(module, monkeypatch)
    for parser in parsers(top):
        assert parser.prog.startswith(f"python -m {TYPED.get(module, module)}"), parser.prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog}: {'/'.join(action.option_strings) or action.dest} has no help"


def test_missing_input_is_one_line_not_a_traceback(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "export.reports.pseudolabel", str(tmp_path / "missing.jsonl"),
                        "-o", str(tmp_path / "out.jsonl")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"python -m export.reports.pseudolabel: error: "
                                             f"{tmp_path / 'missing.jsonl'}: no such file or folder"], r.stderr
