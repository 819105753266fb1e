"""Where the checkout and the shared data are, and a skip when the data is not there."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADEDGE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


def need_data(*parts: str) -> Path:
    """Path under shared/data, or skip with the reason when the data is not beside the checkout."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (shared/data must sit beside the checkout, or set RADEDGE_SHARED)")
    return path
