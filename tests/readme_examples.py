"""Run the README's examples in order in a fresh folder and compare what they print with the README.

What runs: every ```console block (`$ ` starts a command, a trailing backslash continues it, the lines
up to the next `$ ` are its expected output), every ```bash block (each command must exit 0; its
output is not shown, so not compared) and every ```python block (its printed output is the ```text
block right after it, when there is one). They share one bash session (variables and files carry
over), started in an empty folder beside a link `../shared` to the data, with this checkout's
`radedge` and `python` first on PATH.

Expected output may mark what varies between runs, and says how much it may vary:
- `<n:LOW-HIGH>`: a number between LOW and HIGH (a time, a rate);
- `<...>`: any text within a line; a line that is only `<...>` stands for any number of lines.
Blank lines and progress-bar lines are ignored. A block is not run when the paragraph right before
it says "not run by the README test" (with the reason): training, full benchmarks, GPUs, clusters.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SKIP_MARK = "not run by the README test"
BLOCK_RE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
NUMBER_RE = re.compile(r"<n:(-?[\d.]+)-(-?[\d.]+)>")
ANY = "<...>"
# tqdm writes bars ("2285 reports [00:00, 2771.31 reports/s]", " 40%|####  | 2/5 [...]") with \r
BAR_RE = re.compile(r"\[\d+:\d\d.*/s\]\s*$")
STEP = "@@readme-step"


@dataclass
class Step:
    """One command (or Python block) of the README, with the output the README shows for it."""

    line: int
    code: str
    python: bool = False
    expected: list[str] | None = None  # None: the output is not shown, only exit 0 is checked
    exit_shown: bool = False  # the command prints its own exit code (`; echo "exit $?"`)


@dataclass
class Example:
    line: int
    kind: str
    steps: list[Step] = field(default_factory=list)
    skipped: str | None = None  # the reason, when marked not run


def _paragraph_before(text: str, pos: int) -> str:
    before = text[:pos].rstrip("\n").split("\n\n")
    return before[-1] if before else ""


def _console_steps(body: str, first_line: int) -> list[Step]:
    steps: list[Step] = []
    lines = body.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if steps and steps[-1].expected is not None:
                steps[-1].expected.append(line)
            i += 1
            continue
        code = [line[2:]]
        start = i
        while code[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            code.append(lines[i])
        text = "\n".join(code)
        steps.append(Step(first_line + start, text, expected=[], exit_shown='echo "exit $?"' in text))
        i += 1
    return steps


def _bash_steps(body: str, first_line: int) -> list[Step]:
    steps, pending = [], ""
    for k, line in enumerate(body.split("\n")):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            steps.append(Step(first_line + k, pending.rstrip("\n")))
            pending = ""
    return steps


def examples(readme: str) -> list[Example]:
    """Every runnable example of the README, in order (text blocks attach to the block before them)."""
    out: list[Example] = []
    previous_end = -1
    previous: Example | None = None
    for m in BLOCK_RE.finditer(readme):
        kind, body, line = m.group(1), m.group(2), readme.count("\n", 0, m.start()) + 2
        gap = readme[previous_end:m.start()] if previous_end >= 0 else "x"
        if kind == "text" and previous is not None and previous.kind == "python" and not gap.strip():
            previous.steps[0].expected = body.rstrip("\n").split("\n")
        elif kind in ("console", "bash", "python"):
            marked = SKIP_MARK.lower() in _paragraph_before(readme, m.start()).lower()
            example = Example(line, kind, skipped=_paragraph_before(readme, m.start()) if marked else None)
            if kind == "console":
                example.steps = _console_steps(body.rstrip("\n"), line)
            elif kind == "bash":
                example.steps = _bash_steps(body.rstrip("\n"), line)
            else:
                example.steps = [Step(line, body.rstrip("\n"), python=True)]
            out.append(example)
            previous = example
        else:
            previous = None
        previous_end = m.end()
    return out


def script(steps: list[Step]) -> str:
    """One bash script running every step, each framed by markers that carry its exit code."""
    parts = ["exec 2>&1"]
    for k, step in enumerate(steps):
        parts.append(f"echo '{STEP} {k}@@'")
        if step.python:
            parts.append(f"python - <<'README_PYTHON_EOF'\n{step.code}\nREADME_PYTHON_EOF")
        else:
            parts.append(step.code)
        parts.append(f"echo \"{STEP} rc $?@@\"")
    return "\n".join(parts) + "\n"


def run(steps: list[Step], work: Path, root: Path, timeout: float = 1800) -> list[tuple[int, list[str]]]:
    """Run the steps in `work`; returns (exit code, output lines) per step."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(root)
    env.pop("RADEDGE_MODEL_DIR", None)
    env["COLUMNS"] = "100"
    r = subprocess.run(["bash", "-c", script(steps)], cwd=work, env=env, capture_output=True, text=True,
                       timeout=timeout, errors="replace")
    results, lines = [], []
    for raw in r.stdout.replace("\r", "\n").split("\n"):
        m = re.match(rf"(.*){STEP} (?:(\d+)|rc (\d+))@@$", raw)
        if not m:
            lines.append(raw)
            continue
        if m.group(1):
            lines.append(m.group(1))  # output without a final newline, then the marker
        if m.group(3) is not None:
            results.append((int(m.group(3)), lines))
        lines = []
    return results


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts, pos = [], 0
    for m in re.finditer(r"<n:-?[\d.]+--?[\d.]+>|<\.\.\.>", expected):
        parts.append(re.escape(expected[pos:m.start()]))
        parts.append(r"(?P<n%d>-?[\d,]*\.?\d+)" % len(parts) if m.group(0) != ANY else ".*")
        pos = m.end()
    parts.append(re.escape(expected[pos:]))
    return re.compile("".join(parts) + r"\Z")


def _line_matches(expected: str, actual: str) -> bool:
    m = _line_pattern(expected.rstrip()).match(actual.rstrip())
    if not m:
        return False
    bounds = [(float(a), float(b)) for a, b in NUMBER_RE.findall(expected)]
    values = [float(v.replace(",", "")) for k, v in sorted(m.groupdict().items(), key=lambda kv: int(kv[0][1:]))]
    return all(lo <= v <= hi for v, (lo, hi) in zip(values, bounds))


def meaningful(lines: list[str]) -> list[str]:
    return [line.rstrip() for line in lines if line.strip() and not BAR_RE.search(line)]


def compare(expected: list[str], actual: list[str]) -> str | None:
    """None when `actual` is what `expected` shows, else a description of the first difference."""
    exp, act = meaningful(expected), meaningful(actual)

    def match(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i].strip() == ANY:
            return any(match(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and _line_matches(exp[i], act[j]) and match(i + 1, j + 1)

    if match(0, 0):
        return None
    for i, line in enumerate(exp):
        if line.strip() == ANY:
            break
        if i >= len(act) or not _line_matches(line, act[i]):
            return f"README line {i + 1} of this output:\n  README: {line}\n  actual: {act[i] if i < len(act) else '(nothing)'}"
    return "README:\n  " + "\n  ".join(exp) + "\nactual:\n  " + "\n  ".join(act)
