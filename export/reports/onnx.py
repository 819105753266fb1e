"""Export a trained report student to ONNX, check parity, quantize to int8, gate, and write a model folder.

    python -m export.reports.onnx runs/student -o models/report-student --dev REPORTS [--metrics m.json]

1. ONNX (torch's TorchScript exporter, opset 17): inputs input_ids / attention_mask int64
   [batch, sequence] -> logits float32 [batch, 14, 4], both axes dynamic.
2. Parity: max |logit difference| between PyTorch and onnxruntime fp32 on dev windows, printed and
   bounded (`--parity-tol`), else the export fails.
3. int8: onnxruntime dynamic quantization, per-channel, MatMul weights (and the embedding Gather,
   which holds most of the bytes of a small encoder); see shared PERFORMANCE-NOTES.md.
4. Gates, through the runtime's own ReportLabeler on the dev reports; any failure writes nothing:
   - label agreement of the int8 model with the fp32 ONNX model at least `--gate` (0.99);
   - not degenerate: no single label vector for more than `MAX_SAME_LABELS` of the reports and at
     least one finding besides No Finding positive somewhere (a student that calls everything
     No Finding agrees with itself in int8 perfectly; this catches it);
   - quality (`--cv`, the JSON `python -m export.reports.select` writes): the student's
     cross-validated macro F1 and six-finding mean F1 at least its teacher's, on the same folds.
5. The folder: model.onnx, tokenizer.json, manifest.json (sha256, tensors, precision, tokenizer,
   max_length / stride, metrics, provenance) and MODEL_CARD.md.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from radedge.errors import TrainingError
from radedge.labels import CLASSES, POSITIVE
from radedge.manifest import Manifest, TensorSpec, file_hashes
from radedge.reports.labeler import ReportLabeler
from radedge.reports.windows import ReportWindows

from ..common import git_commit
from .student import TOKENIZER_JSON, ReportStudent, load_student
from ..cli import command_parser, run_command

log = logging.getLogger("export.reports.onnx")

INPUTS = [TensorSpec("input_ids", "int64", ("batch", "sequence")),
          TensorSpec("attention_mask", "int64", ("batch", "sequence"))]
OUTPUTS = [TensorSpec("logits", "float32", ("batch", 14, 4))]
MODEL_FILES = ["model.onnx", TOKENIZER_JSON]


MAX_SAME_LABELS = 0.9


class ExportError(TrainingError, RuntimeError):
    """The export did not meet a check (parity, the int8 gate, degenerate labels, quality); nothing was written."""


def degenerate(classes: np.ndarray) -> str | None:
    """Why labels `[n, 14]` look degenerate (one label vector for nearly every report, or nothing but
    No Finding ever positive), or None."""
    if len(classes) == 0:
        return None
    _, counts = np.unique(classes, axis=0, return_counts=True)
    if counts.max() > MAX_SAME_LABELS * len(classes):
        return f"one label vector for {counts.max()} of {len(classes)} dev reports"
    if not (classes[:, 1:] == POSITIVE).any():
        return f"no finding but No Finding is positive in any of {len(classes)} dev reports"
    return None


def quality_gate(cv: dict[str, Any], student: str, teacher: str = "rules") -> dict[str, Any]:
    """Check the cross-validated means (cv["table"][name][metric] = [mean, sd]) of the student against
    its teacher's; raises ExportError when macro F1 or the six-finding mean is below. Returns the checked rows."""
    table = cv["table"]
    if student not in table or teacher not in table:
        raise ExportError(f"no cross-validated scores for {student!r} and {teacher!r} (have {sorted(table)})")
    s, t = table[student], table[teacher]
    for metric in ("macro_f1", "six_mean"):
        if s[metric][0] < t[metric][0]:
            raise ExportError(f"cross-validated {metric} of {student} {s[metric][0]:.4f} is below its teacher's "
                              f"({teacher}) {t[metric][0]:.4f}; nothing written")
    return {"student": student, "teacher": teacher, "folds": cv.get("folds"), "student_cv": s, "teacher_cv": t}


def export_onnx(model: ReportStudent, path: Path, opset: int = 17) -> Path:
    """fp32 ONNX with dynamic batch and sequence axes."""
    model.eval()
    ids = torch.ones((2, 16), dtype=torch.int64)
    mask = torch.ones((2, 16), dtype=torch.int64)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    with torch.inference_mode():
        torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    return path


def quantize_int8(src: Path, dst: Path, gather: bool = True) -> Path:
    """Dynamic int8: per-channel s8 weights for MatMul (and Gather), u8 activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Gather"] if gather else ["MatMul"]
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=ops)
    return dst


# Report students are trained on the Open-i reports (described as CC BY-NC-ND 4.0, see
# shared/data/openi/README.md): the model carries their non-commercial terms, whatever the code's licence.
LICENCE = "CC-BY-NC-ND-4.0"


def write_folder(folder: Path, onnx_path: Path, tokenizer: Path, *, name: str, precision: str, max_length: int,
                 stride: int, metrics: dict[str, Any] | None = None,
                 provenance: dict[str, Any] | None = None, reading: dict[str, Any] | None = None,
                 licence: str = LICENCE) -> Manifest:
    """A loadable report-model folder (ONNX + tokenizer + manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "model.onnx")
    shutil.copyfile(tokenizer, folder / TOKENIZER_JSON)
    manifest = Manifest(name=name, task="report-labels", files=file_hashes(folder, MODEL_FILES), inputs=INPUTS,
                        outputs=OUTPUTS, precision=precision, classes=list(CLASSES), tokenizer=TOKENIZER_JSON,
                        max_length=max_length, stride=stride, metrics=metrics or {}, provenance=provenance or {},
                        extra={"reading": reading} if reading else {}, licence=licence)
    manifest.write(folder)
    return manifest


def parity(model: ReportStudent, onnx_path: Path, windows: ReportWindows, texts: Sequence[str],
           batch_size: int = 32) -> float:
    """Max |logit difference| between PyTorch and onnxruntime (fp32) over the windows of `texts`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.inference_mode():
        for batch in windows.batches(windows.encode(texts), batch_size):
            ref = model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)).numpy()
            got = session.run(["logits"], {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask})[0]
            worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def label_agreement(a: ReportLabeler, b: ReportLabeler, texts: Sequence[str]) -> tuple[float, np.ndarray]:
    """Fraction of (report, finding) labels on which two labelers give the same class, and b's classes."""
    ca = np.stack([r.classes for r in a(texts)])
    cb = np.stack([r.classes for r in b(texts)])
    return float((ca == cb).mean()), cb


def export_student(student_dir: Path, out: Path, dev_texts: Sequence[str], *, name: str | None = None,
                   gate: float = 0.99, parity_tol: float = 1e-3, gather: bool = True,
                   metrics: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None,
                   card: str | None = None, keep_fp32: Path | None = None,
                   cv: dict[str, Any] | None = None, cv_name: str | None = None) -> dict[str, Any]:
    """Run steps 1-5; returns the export's own measurements. Raises ExportError on a failed check.
    `cv` (select's summary) and `cv_name` (this student's row in it) turn the quality gate on."""
    checked = quality_gate(cv, cv_name or "") if cv is not None else None
    model, info = load_student(student_dir)
    reading = info.get("reading")
    tokenizer = student_dir / TOKENIZER_JSON
    max_length, stride = int(info["max_length"]), int(info["stride"])
    from tokenizers import Tokenizer

    windows = ReportWindows(Tokenizer.from_file(str(tokenizer)), max_length, stride)
    name = name or out.name
    with tempfile.TemporaryDirectory(prefix="radedge-export-") as tmp:
        tmp_dir = Path(tmp)
        fp32 = export_onnx(model, tmp_dir / "fp32.onnx")
        diff = parity(model, fp32, windows, dev_texts)
        log.info("parity: max |logit difference| PyTorch vs onnxruntime fp32 = %.2e (bound %.0e)", diff, parity_tol)
        print(f"parity: max abs logit difference PyTorch vs ONNX fp32 = {diff:.3e} (bound {parity_tol:.0e})")
        if not diff <= parity_tol:
            raise ExportError(f"ONNX fp32 differs from PyTorch by {diff:.3e} > {parity_tol:.0e}")
        int8 = quantize_int8(fp32, tmp_dir / "int8.onnx", gather=gather)
        fp32_dir = keep_fp32 or tmp_dir / "fp32-model"
        write_folder(fp32_dir, fp32, tokenizer, name=name + "-fp32", precision="fp32", max_length=max_length,
                     stride=stride, reading=reading)
        int8_dir = tmp_dir / "int8-model"
        write_folder(int8_dir, int8, tokenizer, name=name, precision="int8", max_length=max_length, stride=stride,
                     reading=reading)
        agreement, int8_classes = label_agreement(ReportLabeler.load(fp32_dir, threads=1),
                                                  ReportLabeler.load(int8_dir, threads=1), dev_texts)
        print(f"int8 gate: label agreement with fp32 ONNX on {len(dev_texts)} dev reports = {agreement:.4f} "
              f"(gate {gate})")
        if agreement < gate:
            raise ExportError(f"int8 label agreement {agreement:.4f} < gate {gate}; nothing written")
        why = degenerate(int8_classes)
        if why:
            raise ExportError(f"degenerate student: {why}; nothing written")
        measured = {
            "parity_max_abs_logit_diff": diff,
            "int8_fp32_label_agreement": round(agreement, 5),
            "gate": {"int8_fp32_label_agreement_min": gate, "dev_reports": len(dev_texts)},
            "onnx_bytes": {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
            **({"quality_gate": checked} if checked else {}),
        }
        prov = {
            "student": {k: v for k, v in info.items() if k != "history"},
            "training": info.get("history"),
            "commit": git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "export_command": "python -m export.reports.onnx " + " ".join(sys.argv[1:]),
            "quantization": {"tool": "onnxruntime.quantization.quantize_dynamic", "per_channel": True,
                             "weight_type": "QInt8", "op_types": ["MatMul", "Gather"] if gather else ["MatMul"]},
            **(provenance or {}),
        }
        tmp_out = out.with_name(out.name + ".tmp")
        if tmp_out.exists():
            shutil.rmtree(tmp_out)
        write_folder(tmp_out, int8, tokenizer, name=name, precision="int8", max_length=max_length, stride=stride,
                     metrics={**measured, **(metrics or {})}, provenance=prov, reading=reading)
        if card:
            (tmp_out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
            manifest = Manifest.read(tmp_out)
            manifest.files = file_hashes(tmp_out, MODEL_FILES + ["MODEL_CARD.md"])
            manifest.write(tmp_out)
        if out.exists():
            shutil.rmtree(out)
        tmp_out.rename(out)
    return measured


def read_texts(path: Path, holdout_only: bool = True) -> list[str]:
    """Report texts from a reports .jsonl (id, text); by default only the hold-out reports."""
    from ..splits import is_holdout

    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("text", "").strip() and (not holdout_only or is_holdout(str(rec["id"]))):
                texts.append(rec["text"])
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = command_parser("export.reports.onnx", __doc__.split("\n\n")[0])
    p.add_argument("student", type=Path, help="student folder from export.reports.distill")
    p.add_argument("-o", "--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--dev", type=Path, required=True, help="reports .jsonl (id, text) for parity and the gate")
    p.add_argument("--all-dev", action="store_true", help="use every report in --dev, not only the hold-out")
    p.add_argument("--name", help="model name in the manifest (default: the folder name)")
    p.add_argument("--gate", type=float, default=0.99,
                   help="least label agreement of the int8 model with the fp32 ONNX model")
    p.add_argument("--parity-tol", type=float, default=1e-3,
                   help="largest |logit difference| PyTorch vs ONNX fp32 accepted")
    p.add_argument("--no-gather", action="store_true", help="quantize MatMul only (keep embeddings fp32)")
    p.add_argument("--metrics", type=Path, help="JSON of further metrics for the manifest")
    p.add_argument("--card", type=Path, help="MODEL_CARD.md to ship")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--cv", type=Path, help="select's summary.json: refuse a student below its teacher there")
    p.add_argument("--cv-name", help="the student's row in --cv")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = read_texts(args.dev, holdout_only=not args.all_dev)
    metrics = json.loads(args.metrics.read_text()) if args.metrics else None
    card = args.card.read_text(encoding="utf-8") if args.card else None
    try:
        export_student(args.student, args.out, texts, name=args.name, gate=args.gate, parity_tol=args.parity_tol,
                       gather=not args.no_gather, metrics=metrics, card=card,
                       cv=json.loads(args.cv.read_text()) if args.cv else None, cv_name=args.cv_name)
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_command(main, "export.reports.onnx")
