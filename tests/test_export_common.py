"""export.common: the seeding rule and the commit both training pipelines record. Marker `export` (torch)."""
from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.export
torch = pytest.importorskip("torch")

from export.common import ROOT, git_commit, seed_everything  # noqa: E402


def test_seed_everything_repeats_python_numpy_and_torch():
    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first


def test_git_commit_names_head_and_marks_a_dirty_tree(tmp_path: Path):
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    assert re.fullmatch(re.escape(head) + r"(-dirty)?", git_commit())
    repo = tmp_path / "repo"
    (repo / "radedge").mkdir(parents=True)
    (repo / "radedge" / "a.py").write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    clean = git_commit(repo)
    assert re.fullmatch(r"[0-9a-f]{40}", clean)
    (repo / "radedge" / "a.py").write_text("x = 2\n")
    assert git_commit(repo) == clean + "-dirty"
    assert git_commit(tmp_path / "not-a-repo") == "unknown"
