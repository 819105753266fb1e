"""What both training pipelines (export/reports, export/images) need alike: one seeding rule and the
checkout's commit for the provenance a shipped model records."""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators, so a training run repeats from its seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit(repo: Path = ROOT) -> str:
    """HEAD of the checkout, with "-dirty" when export/ or radedge/ has uncommitted changes (the model
    could then not be rebuilt from the commit alone); "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "export", "radedge"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
