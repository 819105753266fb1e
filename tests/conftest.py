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


def _accelerator_skips() -> dict[str, str]:
    """marker -> why its tests cannot run here ({} when a CUDA GPU and TensorRT are both present)."""
    from radedge.backends.tensorrt import cuda_device_count

    reasons = {}
    if cuda_device_count() == 0:
        reasons["gpu"] = "no CUDA GPU visible (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides it)"
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        reasons["tensorrt"] = f"TensorRT not importable ({exc}); pip install 'radedge[gpu]'"
    return reasons


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests without a CUDA device and `tensorrt` tests without TensorRT, saying why."""
    marked = [item for item in items if item.get_closest_marker("gpu") or item.get_closest_marker("tensorrt")]
    if not marked:
        return
    reasons = _accelerator_skips()
    for item in marked:
        for marker, reason in reasons.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
                break
