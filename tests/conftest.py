from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADEDGE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def tiny_report_model(tmp_path: Path) -> Path:
    from tiny_models import write_report_model

    return write_report_model(tmp_path / "tiny-report")


@pytest.fixture
def tiny_image_model(tmp_path: Path) -> Path:
    from tiny_models import write_image_model

    return write_image_model(tmp_path / "tiny-image")


def need_data(*parts: str) -> Path:
    """Path under shared/data, or skip with the reason when the data is not beside the checkout."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found (shared/data must sit beside the checkout, or set RADEDGE_SHARED)")
    return path
