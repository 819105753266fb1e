"""Shared fixtures (tiny models, the loopback chat server) and the accelerator skips."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from tests.chat_server import ChatServer


@pytest.fixture
def tiny_report_model(tmp_path: Path) -> Path:
    from tests.tiny_models import write_report_model

    return write_report_model(tmp_path / "tiny-report")


@pytest.fixture
def tiny_image_model(tmp_path: Path) -> Path:
    from tests.tiny_models import write_image_model

    return write_image_model(tmp_path / "tiny-image")


@pytest.fixture
def server() -> Iterator["ChatServer"]:
    """A chat-completions server on loopback for the LLM teacher (tests/chat_server.py), one per test."""
    from tests.chat_server import ChatServer

    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def tiny_deberta_onnx(tmp_path_factory) -> Path:
    """A tiny DebertaV2 encoder exported to ONNX (tests/deberta.py)."""
    from tests.deberta import export_tiny_deberta

    path = tmp_path_factory.mktemp("deberta") / "model.onnx"
    export_tiny_deberta(path)
    return path


@pytest.fixture(scope="module")
def tiny_deberta_report_model(tmp_path_factory) -> Path:
    """A report-model folder (tokenizer, manifest) around a tiny DebertaV2 export."""
    from radedge.labels import CLASSES
    from radedge.manifest import Manifest, TensorSpec, file_hashes
    from tests.deberta import export_tiny_deberta
    from tests.tiny_models import write_tokenizer

    folder = tmp_path_factory.mktemp("deberta-report")
    write_tokenizer(folder)
    export_tiny_deberta(folder / "model.onnx", vocab_size=200, report_head=True)
    Manifest(name="deberta-report", task="report-labels", files=file_hashes(folder, ["model.onnx", "tokenizer.json"]),
             inputs=[TensorSpec("input_ids", "int64", ("batch", "sequence")),
                     TensorSpec("attention_mask", "int64", ("batch", "sequence"))],
             outputs=[TensorSpec("logits", "float32", ("batch", 14, 4))], classes=list(CLASSES),
             tokenizer="tokenizer.json", max_length=64, stride=8).write(folder)
    return folder


def _accelerator_skips() -> dict[str, str]:
    """marker -> why its tests cannot run here ({} when a CUDA GPU and TensorRT are both present)."""
    from radedge.backends.cuda import cuda_device_count

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
