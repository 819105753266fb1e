"""runtimes.tensorrt preparation on the shipped models: every folder in models/, whatever it holds.

For each model, the fp16 and int8 graphs TensorRT would be given (`python -m runtimes.tensorrt
prepare`) pass onnx.checker, keep the model's inputs and outputs, carry no onnxruntime-only
quantization, and, run by onnxruntime on the CPU, label like the shipped model within the bounds the
GPU parity tests use (benchmarks/parity.py): >= 99% of report labels identical on the Open-i hold-out;
per-finding image AUC within 0.01 on the NIH images. int8 is calibrated as those tests calibrate it and
must pass its own gate (no silent fp16 fallback). Then `dequantize` on the shipped graphs quantized
again another way quantize_dynamic can (per-tensor uint8 weights, the integer-moving ops), so a
re-exported model with other quantization settings is covered too. Small graphs for each quantized
pattern: test_tensorrt_dequantize.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from benchmarks import parity
from radedge.backends.onnxruntime import OnnxRuntimeBackend
from radedge.manifest import Manifest
from radedge.registry import LoadedModel
from runtimes.tensorrt import precision, surgery
from tests.paths import ROOT, need_data

pytestmark = pytest.mark.slow

SHIPPED = sorted(p.parent for p in (ROOT / "models").glob("*/manifest.json"))
REPORTS = "report-labels"


def _io(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers], [o.name for o in model.graph.output]


class Shipped:
    """One shipped model, its evaluation data, and what it (and each prepared graph) says about it."""

    def __init__(self, folder: Path, tmp: Path) -> None:
        self.folder, self.tmp = folder, tmp
        self.manifest = Manifest.read(folder)
        self.manifest.verify_files(folder)
        self._prepared: dict[str, precision.Prepared] = {}
        if self.manifest.task == REPORTS:
            need_data("openi", "reports.jsonl")
            self.texts = [r["text"] for r in parity.openi_split(holdout=True)]
        else:
            need_data("images", "nih", "labels.csv")
            self.paths, self.truth = parity.nih()
            self.pixels = self._pixels()
        self.reference = self.outputs(folder / "model.onnx")

    def _pixels(self) -> np.ndarray:
        from radedge.images.preprocess import check_spec
        from radedge.images.scorer import prepare_input

        spec = check_spec(self.manifest.preprocess or {})
        prepared = [prepare_input(p, spec) for p in self.paths]
        keep = [k for k, p in enumerate(prepared) if p.status == "scored"]
        self.truth = self.truth[keep]
        return np.stack([prepared[k].pixels for k in keep])

    def calibration(self) -> Path:
        if self.manifest.task == REPORTS:
            return parity.report_calibration(self.tmp / "calib-reports")
        return need_data("images", "covid-cases")

    def prepared(self, name: str) -> precision.Prepared:
        if name not in self._prepared:
            calib = self.calibration() if name == "int8" else None
            self._prepared[name] = precision.prepare(self.folder, self.manifest, name, calib=calib)
        return self._prepared[name]

    def outputs(self, graph: Path | onnx.ModelProto) -> np.ndarray:
        """Report classes [reports, 14] through ReportLabeler, or image probabilities [images, 14]."""
        if isinstance(graph, onnx.ModelProto):
            path = self.tmp / f"graph-{len(list(self.tmp.glob('graph-*.onnx')))}.onnx"
            onnx.save(graph, str(path))
            graph = path
        backend = OnnxRuntimeBackend(graph, device="cpu")
        if self.manifest.task == REPORTS:
            from radedge.reports.labeler import ReportLabeler
            from radedge.reports.windows import ReportWindows

            labeler = ReportLabeler(self.manifest.name, self.folder, windows=ReportWindows.from_model_dir(
                self.folder, self.manifest), backend=backend)
            return np.stack([r.classes for r in labeler(self.texts)])
        from radedge.images.scorer import ImageScorer

        scorer = ImageScorer(LoadedModel(self.folder, self.manifest, backend), batch_size=32)
        return scorer.infer(self.pixels)

    def assert_matches(self, candidate: np.ndarray, what: str) -> None:
        if self.manifest.task == REPORTS:
            agreement = parity.label_agreement(self.reference, candidate)
            print(f"{self.manifest.name} {what}: label agreement {agreement:.4f} over {candidate.size} labels")
            assert agreement >= parity.LABEL_AGREEMENT, f"{what}: label agreement {agreement:.4f}"
            return
        worst, findings = parity.worst_auc_gap(self.reference, candidate, self.truth)
        mean_diff = float(np.mean(np.abs(candidate - self.reference)))
        print(f"{self.manifest.name} {what}: largest AUC difference {worst:.4f} over {findings} findings, "
              f"mean |dp| {mean_diff:.4f}")
        assert worst <= parity.AUC_TOLERANCE, f"{what}: AUC moved by {worst:.4f}"
        assert mean_diff <= precision.IMAGE_PROB_GATE, f"{what}: mean |dp| {mean_diff:.4f}"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[Path, Shipped]:
    cache: dict[Path, Shipped] = {}

    class Lazy(dict):
        def __missing__(self, folder: Path) -> Shipped:
            cache[folder] = Shipped(folder, tmp_path_factory.mktemp(folder.name))
            return cache[folder]

    return Lazy()


def test_models_are_shipped():
    assert SHIPPED, "models/ holds no model folder"


@pytest.mark.parametrize("name", ["fp16", "int8"])
@pytest.mark.parametrize("folder", SHIPPED, ids=[f.name for f in SHIPPED])
def test_prepared_graph_is_tensorrt_ready_and_labels_like_the_shipped_model(folder, name, shipped):
    model = shipped[folder]
    prepared = model.prepared(name)
    if name == "int8" and prepared.precision != "int8":  # the gate refused int8: fp16 is built instead, and said so
        assert prepared.gate and not prepared.gate["passed"] and any("accuracy gate" in n for n in prepared.notes)
        model.assert_matches(model.outputs(prepared.model), "int8 request built as fp16")
        pytest.xfail(f"{folder.name}: static int8 misses its accuracy gate ({prepared.gate['reason']}), "
                     "so its int8 plan would be fp16")
    onnx.checker.check_model(prepared.model)
    assert not surgery.has_any(prepared.model, surgery.DYNAMIC_QUANT_OPS)
    assert surgery.quantization_kind(prepared.model) == ("qdq-int8" if name == "int8" else "float")
    assert _io(prepared.model) == _io(onnx.load(str(folder / "model.onnx")))
    model.assert_matches(model.outputs(prepared.model), name)


def test_the_prepare_command_writes_the_graph(tmp_path, capsys):
    """The command the issue found failing, on the shipped report model (or the first model shipped)."""
    from runtimes.tensorrt.__main__ import main

    folder = next((f for f in SHIPPED if Manifest.read(f).task == REPORTS), SHIPPED[0])
    out = tmp_path / "prepared.onnx"
    assert main(["prepare", str(folder), str(out)]) == 0, capsys.readouterr().err
    onnx.checker.check_model(str(out))
    assert '"precision": "fp16"' in capsys.readouterr().out


# quantize_dynamic settings beyond the export's own (per-channel s8 MatMul + Gather): per-tensor uint8
# weights, and the ops it runs on integers after a quantized tensor (its Direct8BitOp list). Conv is left
# out here (ConvInteger on a depthwise stem with per-tensor weights is a different, much worse model
# before any surgery); test_tensorrt_dequantize.py covers ConvInteger.
REQUANTIZE = {
    "per-tensor-u8": {"per_channel": False, "weight_type": "QUInt8",
                      "op_types_to_quantize": ["MatMul", "Gather", "Transpose", "Reshape", "Squeeze", "Unsqueeze",
                                               "Flatten"]},
}


@pytest.mark.parametrize("how", sorted(REQUANTIZE))
@pytest.mark.parametrize("folder", SHIPPED, ids=[f.name for f in SHIPPED])
def test_dequantize_follows_other_quantize_dynamic_settings(folder, how, shipped):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = shipped[folder]
    options = dict(REQUANTIZE[how], weight_type=QuantType[REQUANTIZE[how]["weight_type"]])
    src, dst = model.tmp / f"{how}-float.onnx", model.tmp / f"{how}-requantized.onnx"
    onnx.save(precision.float_graph(onnx.load(str(folder / "model.onnx")), []), str(src))
    quantize_dynamic(str(src), str(dst), **options)
    requantized = onnx.load(str(dst))
    assert surgery.quantization_kind(requantized) == "dynamic"
    try:  # these settings can make a different model before any surgery: then there is nothing to judge it by
        model.assert_matches(model.outputs(requantized), f"{how} as onnxruntime runs it, before surgery")
    except AssertionError as exc:
        pytest.xfail(f"quantize_dynamic with {how} changes {folder.name} beyond the bounds by itself: {exc}")
    ops = surgery.ops_in(requantized)
    changed = surgery.dequantize(requantized)
    assert changed >= 1
    assert surgery.quantization_kind(requantized) == "float"
    onnx.checker.check_model(requantized)
    model.assert_matches(model.outputs(requantized), f"{how} ({', '.join(sorted(ops & surgery.DYNAMIC_QUANT_OPS))})")
