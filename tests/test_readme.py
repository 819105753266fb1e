"""The README is tested: every shell (and Python) example runs in order in a fresh folder and prints
what the README shows (tests/readme_examples.py has the conventions). Run it alone with
`python -m pytest -q tests/test_readme.py`."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import ROOT
from tests.readme_examples import SKIP_MARK, compare, examples, run

DATA = ROOT.parent / "shared" / "data"
README = ROOT / "README.md"
MOST_SKIPPED = 13  # slow examples (training, full benchmarks, GPU, clusters) may be left out, but few


def test_the_readme_examples_print_what_the_readme_shows(tmp_path: Path) -> None:
    shared = Path("/work/shared/data") if not DATA.is_dir() else DATA
    if not shared.is_dir():
        pytest.skip("the README's examples read ../shared/data")
    (tmp_path / "shared").symlink_to(shared.parent)
    work = tmp_path / "work"
    work.mkdir()
    found = examples(README.read_text(encoding="utf-8"))
    skipped = [e for e in found if e.skipped]
    assert len(skipped) <= MOST_SKIPPED, [e.line for e in skipped]
    assert found[0].skipped and "pip install" in found[0].steps[0].code  # the install and the test run come first
    steps = [s for e in found if not e.skipped for s in e.steps]
    results = run(steps, work, ROOT)
    assert len(results) == len(steps), f"the session stopped at README line {steps[len(results)].line}"
    problems = []
    for step, (code, output) in zip(steps, results):
        if code != 0 and not step.exit_shown:
            problems.append(f"README:{step.line}: `{step.code}` exited {code}:\n  " + "\n  ".join(output[-8:]))
        elif step.expected is not None and (diff := compare(step.expected, output)):
            problems.append(f"README:{step.line}: `{step.code.splitlines()[0]}` printed something else: {diff}")
    assert not problems, "\n\n".join(problems)


def test_the_conventions() -> None:
    from tests.readme_examples import compare as cmp, examples as parse

    assert cmp(["radedge: labelled 2 reports in <n:0-60> s, <n:1-1000000> reports/s"],
               ["radedge: labelled 2 reports in 0.4 s, 5 reports/s", "2/2 [00:00<00:00, 58.20 reports/s]"]) is None
    assert cmp(["in <n:0-1> s"], ["in 3.2 s"]) is not None  # out of the plausible range
    assert cmp(["a", "<...>", "z"], ["a", "b", "c", "z"]) is None and cmp(["a", "<...>", "z"], ["a", "b"])
    text = ("x\n\n```console\n$ echo a \\\n  b\na b\n```\n\nNot run by the README test: slow.\n```bash\nsleep 1\n```\n"
            "\n```python\nprint(1)\n```\n\n```text\n1\n```\n")
    found = parse(text)
    assert [e.kind for e in found] == ["console", "bash", "python"] and found[1].skipped
    assert found[0].steps[0].code == "echo a \\\n  b" and found[0].steps[0].expected == ["a b"]
    assert found[2].steps[0].expected == ["1"] and SKIP_MARK.lower() in found[1].skipped.lower()
