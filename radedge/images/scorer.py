"""`ImageScorer`: chest radiographs (DICOM, PNG / JPEG, numpy arrays) -> 14 finding probabilities.

    >>> from radedge import ImageScorer
    >>> scorer = ImageScorer.load("default")          # or a model folder path
    >>> result = scorer(["IM0001.dcm", "cxr.png"])[0]
    >>> result.status, result.probabilities, result.findings()

Every input gets one `ImageResult`: status "scored" with calibrated probabilities and thresholded
labels, "out-of-distribution" with `ood_score` instead of findings (noise, a blank frame, a knee: see
`radedge.images.ood`), or "skipped" / "error" with the reason (a lateral view, an SR object, a
truncated file); a bad input never stops the others. Findings the model was not trained for (the
manifest's `trained_findings`) are not available: NaN in the arrays, absent from `findings()`. Preparing an input (`prepare_input`) is a plain function of the input and
the model's preprocess spec, so `radedge score-dicoms` runs it in worker processes; inference runs
in batches on the model's backend. No torch anywhere. A scorer holds no mutable state after
loading (onnxruntime sessions are thread-safe), so one scorer may be called from several threads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InputError, ManifestError, SkippedInput
from ..labels import FINDINGS
from .calibration import calibrate
from .dicom import DEFAULT_MAX_PIXELS, DEFAULT_VIEWS, DICOM_KINDS, parse_views, read_dicom, sniff
from .ood import OODCheck
from .preprocess import check_spec, load_image, preprocess, to_unit_range

TASK = "image-findings"
# Names opencv reads as pictures; any other file is read as DICOM (found by content).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
OOD = "out-of-distribution"
STATUSES = ("scored", OOD, "skipped", "error")


@dataclass
class ImageOutcome:
    """What every input carries, scored or not: its name, status ("scored" = ready to score or
    scored, "skipped", "error", with `reason` and `error_type` saying why) and its DICOM UIDs."""

    source: str
    status: str = "scored"
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    reason: str = ""
    error_type: str = ""

    def outcome(self) -> dict[str, str]:
        """The shared fields by name, to carry them from one stage's record to the next."""
        return {f.name: getattr(self, f.name) for f in fields(ImageOutcome)}


@dataclass
class PreparedImage(ImageOutcome):
    """One input after reading and preprocessing, before inference (small: pixels are model-sized)."""

    pixels: np.ndarray | None = None  # float32 [channels, size, size]


@dataclass
class ImageResult(ImageOutcome):
    """One input's outcome. probabilities / labels are float32 [14] in FINDINGS order (labels 1.0 /
    0.0), NaN for a finding the model was not trained for; both are None when the input was not
    scored (then `reason` and `error_type` say why). `ood_score` is the out-of-distribution score of
    every input that reached the model (None when the model has no such check)."""

    probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None
    ood_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def findings(self) -> dict[str, float]:
        """{finding: probability} of the findings the model reports, empty when not scored."""
        if self.probabilities is None:
            return {}
        return {name: float(p) for name, p in zip(FINDINGS, self.probabilities) if not np.isnan(p)}

    def positive(self) -> list[str]:
        """Findings whose probability reached the model's threshold."""
        if self.labels is None:
            return []
        return [name for name, flag in zip(FINDINGS, self.labels) if flag == 1]


def _from_error(source: str, exc: InputError) -> PreparedImage:
    status = "skipped" if isinstance(exc, SkippedInput) else "error"
    study, series, sop = getattr(exc, "uids", ("", "", ""))
    return PreparedImage(source=source, status=status, study_uid=study, series_uid=series, sop_uid=sop,
                         reason=str(exc), error_type=type(exc).__name__)


def array_to_grey(array: np.ndarray) -> np.ndarray:
    """A caller's array -> 2-D float32 in [0, 1]: float arrays are taken as [0, 1] display values,
    integer arrays are divided by their type's maximum; [H, W, 1] is squeezed."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"an image array must be 2-D grey (rows, cols), got shape {arr.shape}")
    return to_unit_range(arr)


def prepare_input(source: str | os.PathLike | np.ndarray, spec: Mapping[str, Any],
                  views: frozenset[str] | None = DEFAULT_VIEWS, name: str | None = None,
                  images: bool = True, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  reduced: bool = True) -> PreparedImage:
    """Read and preprocess one input; never raises for a bad input (the result says why).

    `images=False` reads every path as DICOM, so PNG / JPEG files are skipped as "not a DICOM
    file" (what a folder scan wants); `name` is the label recorded for the input. DICOM frames are
    decoded at reduced size where the codec allows (`reduced=False`: always in full) and refused
    above `max_pixels` (Rows x Columns x frames, from the header; None: no cap).
    """
    label = name if name is not None else ("array" if isinstance(source, np.ndarray) else str(source))
    try:
        if isinstance(source, np.ndarray):
            return PreparedImage(label, pixels=preprocess(array_to_grey(source), spec))
        path = Path(source)
        if images and path.suffix.lower() in IMAGE_SUFFIXES and sniff(path) not in DICOM_KINDS:
            return PreparedImage(label, pixels=preprocess(load_image(path), spec))
        dcm = read_dicom(path, voi=bool(spec.get("voi", False)), views=views, decode_for=spec if reduced else None,
                         max_pixels=max_pixels)
        return PreparedImage(label, pixels=preprocess(dcm.image, spec, dcm.shape, dcm.origin), study_uid=dcm.study_uid,
                             series_uid=dcm.series_uid, sop_uid=dcm.sop_uid)
    except InputError as exc:
        return _from_error(label, exc)
    except Exception as exc:  # unreadable file, odd array, a library's own error: still one item's error
        return PreparedImage(label, status="error", reason=f"{type(exc).__name__}: {exc}",
                             error_type=type(exc).__name__)


class ImageScorer:
    """A loaded image-findings model plus its preprocessing, thresholds and view rule."""

    def __init__(self, model: Any, batch_size: int = 8, views: str | Iterable[str] | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, reduced: bool = True) -> None:
        manifest = model.manifest
        if manifest.task != TASK or not manifest.preprocess:
            raise ManifestError(f"{model.path}: not an image-findings model with a preprocess section")
        self.model = model
        self.spec = check_spec(manifest.preprocess)
        self.views = parse_views(views)
        self.max_pixels = max_pixels
        self.reduced = reduced
        self.input_name = manifest.inputs[0].name
        self.output_name = manifest.outputs[0].name
        trained = manifest.trained_findings if manifest.trained_findings is not None else manifest.labels
        self.trained = np.array([name in trained for name in manifest.labels])
        self.calibration = manifest.calibration
        self.ood = OODCheck.load(model.path, manifest.ood, self.spec) if manifest.ood else None
        fixed = manifest.inputs[0].shape[0]
        self.batch_size = fixed if isinstance(fixed, int) else max(1, int(batch_size))
        thresholds = manifest.thresholds or {}
        self.thresholds = np.array([float(thresholds.get(name, 0.5)) for name in manifest.labels], dtype=np.float32)
        if list(manifest.labels) != list(FINDINGS):
            raise ManifestError(f"{model.path}: labels differ from the 14 findings in their fixed order")

    @classmethod
    def load(cls, name: str | os.PathLike = "default", backend: str = "onnxruntime", device: str = "cpu",
             threads: int | None = None, batch_size: int = 8, views: str | Iterable[str] | None = None,
             max_pixels: int | None = DEFAULT_MAX_PIXELS, reduced: bool = True) -> "ImageScorer":
        """Open a model by name, "default" or folder path (verified, see registry.open_model)."""
        from ..registry import open_model

        return cls(open_model(name, task=TASK, backend=backend, device=device, threads=threads),
                   batch_size=batch_size, views=views, max_pixels=max_pixels, reduced=reduced)

    # ---- the stages, usable one by one (score-dicoms and the benchmarks do) ----------------------
    def prepare(self, source: str | os.PathLike | np.ndarray, name: str | None = None,
                images: bool = True) -> PreparedImage:
        return prepare_input(source, self.spec, self.views, name=name, images=images, max_pixels=self.max_pixels,
                             reduced=self.reduced)

    def run_model(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [n, channels, size, size] -> every graph output (float32 [n, ...]), in model-sized
        batches: `probs` as the network gives them (before calibration), and the embedding when the
        graph has one."""
        out: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(pixels), self.batch_size):
            chunk = np.ascontiguousarray(pixels[start:start + self.batch_size], dtype=np.float32)
            for name, value in self.model.backend.run({self.input_name: chunk}).items():
                out.setdefault(name, []).append(np.asarray(value, dtype=np.float32))
        if not out:
            return {self.output_name: np.zeros((0, len(FINDINGS)), dtype=np.float32)}
        return {name: np.concatenate(values) for name, values in out.items()}

    def infer(self, pixels: np.ndarray) -> np.ndarray:
        """float32 [n, channels, size, size] -> the network's float32 [n, 14] outputs (uncalibrated)."""
        return self.run_model(pixels)[self.output_name]

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities [n, 14] from network outputs, NaN for findings not trained."""
        probs = calibrate(raw, self.calibration, FINDINGS)
        probs[:, ~self.trained] = np.nan
        return probs

    def threshold(self, probabilities: np.ndarray) -> np.ndarray:
        """Labels (float32 1 / 0) from calibrated probabilities with the manifest's per-finding
        thresholds; NaN where the probability is NaN (not available)."""
        return np.where(np.isnan(probabilities), np.nan, probabilities >= self.thresholds).astype(np.float32)

    def finish(self, prepared: Sequence[PreparedImage]) -> list[ImageResult]:
        """Run inference on the prepared inputs that are ready; results in input order."""
        ready = [p for p in prepared if p.status == "scored"]
        scores = None
        if ready:
            pixels = np.stack([p.pixels for p in ready])
            outputs = self.run_model(pixels)
            probs = self.probabilities(outputs[self.output_name])
            if self.ood is not None:
                scores = self.ood.score(outputs[self.ood.embedding_output], pixels)
        results, k = [], 0
        for p in prepared:
            result = ImageResult(**p.outcome())
            if p.status == "scored":
                if scores is not None:
                    result.ood_score = float(scores[k])
                if scores is not None and self.ood.flagged(scores[k]):
                    result.status = OOD
                    result.reason = (f"out of distribution: score {scores[k]:.2f} > {self.ood.flag_above:g} "
                                     "(not a frontal chest radiograph like the training films)")
                else:
                    result.probabilities = probs[k]
                    result.labels = self.threshold(probs[k])
                k += 1
            results.append(result)
        return results

    def stream(self, prepared: Iterable[PreparedImage], ordered: bool = True) -> Iterator[ImageResult]:
        """Results of prepared inputs, inference batch_size ready images at a time (the one
        batching rule of the runtime). ordered=True keeps input order; ordered=False yields a
        skipped or failed input at once instead of holding it behind the batch it arrived in."""
        batch: list[PreparedImage] = []
        ready = 0  # inputs in `batch` ready to score (a long run of skipped files must not make this quadratic)
        for item in prepared:
            if not ordered and item.status != "scored":
                yield from self.finish([item])
                continue
            batch.append(item)
            ready += item.status == "scored"
            if ready >= self.batch_size:
                yield from self.finish(batch)
                batch, ready = [], 0
        yield from self.finish(batch)

    def __call__(self, inputs: str | os.PathLike | np.ndarray | Iterable[str | os.PathLike | np.ndarray]
                 ) -> list[ImageResult]:
        """Score DICOM / PNG / JPEG paths and 2-D arrays; one ImageResult per input, in order."""
        if isinstance(inputs, (str, os.PathLike)) or (isinstance(inputs, np.ndarray) and inputs.ndim == 2):
            inputs = [inputs]
        return list(self.stream(self.prepare(item, name=f"array[{i}]" if isinstance(item, np.ndarray) else str(item))
                                for i, item in enumerate(inputs)))

__all__ = ["IMAGE_SUFFIXES", "OOD", "STATUSES", "ImageOutcome", "ImageResult", "ImageScorer", "PreparedImage",
           "array_to_grey", "prepare_input"]
