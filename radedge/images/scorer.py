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
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InputError, ManifestError, SkippedInput, item_failure
from ..labels import FINDINGS
from .calibration import calibrate
from .dicom import DEFAULT_MAX_PIXELS, DEFAULT_VIEWS, DICOM_KINDS, image_from_dataset, parse_views, read_dicom, sniff
from .ood import OODCheck
from .preprocess import check_spec, load_image, preprocess

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

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (worker process -> the process running the model) with the grey image once when
        every channel repeats it, as preprocessing makes them: a third of the bytes to send."""
        state = dict(self.__dict__)
        pixels = self.pixels
        if pixels is not None and pixels.ndim == 3 and len(pixels) > 1 and (pixels[1:] == pixels[:1]).all():
            state["pixels"], state["channels"] = pixels[:1], len(pixels)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        channels = state.pop("channels", None)
        if channels is not None:
            state["pixels"] = np.repeat(state["pixels"], channels, axis=0)
        self.__dict__.update(state)


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


def array_to_grey(array: np.ndarray, bits_stored: int | None = None) -> np.ndarray:
    """A caller's array -> 2-D float32 in [0, 1]; refuses (InputError) what it cannot read correctly.

    Shapes: [H, W] or [H, W, 1] (one grey image). Values: floats are display values in [0, 1]
    (finite, in range: anything else is refused, not clipped); uint8 is 8-bit (divided by 255);
    other integer arrays need `bits_stored` (a 12-bit image in uint16 is divided by 4095, not 65535)
    and must fit in it."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise InputError(f"an image array must be 2-D grey (rows, cols) or rows x cols x 1, got shape {arr.shape}; "
                         "pass several images as a list")
    if arr.size == 0:
        raise InputError("an empty image array")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError("the image array holds NaN or infinite values")
        low, high = float(arr.min()), float(arr.max())
        if low < 0.0 or high > 1.0:
            raise InputError(f"float pixels are display values in [0, 1]; this array spans {low:g}..{high:g} "
                             "(scale it, or pass integers with bits_stored)")
        return arr.astype(np.float32)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"an image array of {arr.dtype} pixels; pass floats in [0, 1] or integers")
    if bits_stored is None:
        if arr.dtype != np.uint8:
            raise InputError(f"an image array of {arr.dtype} pixels needs bits_stored (e.g. 12 for a 12-bit "
                             "image in uint16): its full scale cannot be guessed")
        bits_stored = 8
    if not 1 <= int(bits_stored) <= 8 * arr.dtype.itemsize:
        raise InputError(f"bits_stored {bits_stored} does not fit {arr.dtype} pixels")
    full = (1 << int(bits_stored)) - 1
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > full:
        raise InputError(f"pixel values {low}..{high} do not fit bits_stored {bits_stored} (0..{full})")
    return (arr.astype(np.float64) / full).astype(np.float32)


def _is_dataset(source: Any) -> bool:
    """A pydicom Dataset (without importing pydicom when the caller has not)."""
    pydicom = sys.modules.get("pydicom")
    return pydicom is not None and isinstance(source, pydicom.Dataset)


def _single(item: Any) -> bool:
    """One input (a path, an array, a Dataset), as opposed to a collection of them."""
    return isinstance(item, (str, os.PathLike, np.ndarray)) or _is_dataset(item)


def _ready(label: str, pixels: np.ndarray, **uids: str) -> PreparedImage:
    """A prepared input, unless its pixels are not finite: NaN / inf (a NaN RescaleSlope or window)
    would be scored as garbage and, batched, change its neighbours' results."""
    if not np.isfinite(pixels).all():
        raise InputError("the image has NaN or infinite pixel values after preprocessing "
                         "(e.g. a NaN RescaleSlope or window), so it cannot be scored")
    return PreparedImage(label, pixels=pixels, **uids)


def prepare_input(source: str | os.PathLike | np.ndarray | Any, spec: Mapping[str, Any],
                  views: frozenset[str] | None = DEFAULT_VIEWS, name: str | None = None,
                  images: bool = True, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  reduced: bool = True, bits_stored: int | None = None) -> PreparedImage:
    """Read and preprocess one input; never raises for a bad input (the result says why).

    `source`: a path (DICOM by content, else PNG / JPEG by name), a 2-D array (`array_to_grey`,
    `bits_stored` for integer arrays) or a pydicom Dataset. `images=False` reads every path as
    DICOM, so PNG / JPEG files are skipped as "not a DICOM file" (what a folder scan wants); `name`
    is the label recorded for the input. DICOM frames are decoded at reduced size where the codec
    allows (`reduced=False`: always in full) and refused above `max_pixels` (Rows x Columns x
    frames, from the header; None: no cap). Any failure, including `BaseException`s from native
    decoders (a Rust panic), is this input's error; only an interrupt propagates.
    """
    label = name if name is not None else ("array" if isinstance(source, np.ndarray) else str(source))
    try:
        if isinstance(source, np.ndarray):
            return _ready(label, preprocess(array_to_grey(source, bits_stored), spec))
        decode_for = spec if reduced else None
        if _is_dataset(source):
            dcm = image_from_dataset(source, voi=bool(spec.get("voi", False)), views=views, decode_for=decode_for,
                                     max_pixels=max_pixels)
        else:
            path = Path(source)
            if images and path.suffix.lower() in IMAGE_SUFFIXES and sniff(path) not in DICOM_KINDS:
                return _ready(label, preprocess(load_image(path, max_pixels), spec))
            dcm = read_dicom(path, voi=bool(spec.get("voi", False)), views=views, decode_for=decode_for,
                             max_pixels=max_pixels)
        return _ready(label, preprocess(dcm.image, spec, dcm.shape, dcm.origin, dcm.kernel), study_uid=dcm.study_uid,
                      series_uid=dcm.series_uid, sop_uid=dcm.sop_uid)
    except InputError as exc:
        return _from_error(label, exc)
    except BaseException as exc:  # noqa: BLE001 (a library's own error, a native panic: still one item's error)
        if not item_failure(exc):
            raise
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

    @property
    def identity(self) -> dict[str, Any]:
        """What an output records as the model that made it: name and sha256 (registry.LoadedModel)."""
        return dict(getattr(self.model, "identity", {"name": getattr(self.model.manifest, "name", "")}))

    @classmethod
    def load(cls, name: str | os.PathLike = "default", backend: str = "onnxruntime", device: str = "cpu",
             threads: int | None = None, batch_size: int = 8, views: str | Iterable[str] | None = None,
             max_pixels: int | None = DEFAULT_MAX_PIXELS, reduced: bool = True) -> "ImageScorer":
        """Open a model by name, "default" or folder path (verified, see registry.open_model)."""
        from ..registry import open_model

        return cls(open_model(name, task=TASK, backend=backend, device=device, threads=threads),
                   batch_size=batch_size, views=views, max_pixels=max_pixels, reduced=reduced)

    # ---- the stages, usable one by one (score-dicoms and the benchmarks do) ----------------------
    def prepare(self, source: str | os.PathLike | np.ndarray | Any, name: str | None = None,
                images: bool = True, bits_stored: int | None = None) -> PreparedImage:
        return prepare_input(source, self.spec, self.views, name=name, images=images, max_pixels=self.max_pixels,
                             reduced=self.reduced, bits_stored=bits_stored)

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
        """Run inference on the prepared inputs that are ready; results in input order. An input whose
        probabilities come out non-finite, or whose batch the backend cannot run even alone, is that
        input's error."""
        ready = [p for p in prepared if p.status == "scored"]
        outcomes = self._infer_each(ready)
        results, k = [], 0
        for p in prepared:
            result = ImageResult(**p.outcome())
            if p.status == "scored":
                outcome = outcomes[k]
                k += 1
                if isinstance(outcome, BaseException):
                    result.status, result.error_type = "error", type(outcome).__name__
                    result.reason = f"{type(outcome).__name__}: {outcome}"
                    results.append(result)
                    continue
                probs, score = outcome
                if score is not None:
                    result.ood_score = score
                if not np.isfinite(probs[self.trained]).all():  # untrained findings are NaN on purpose
                    result.status, result.error_type = "error", "InputError"
                    result.reason = "the model gave NaN or infinite probabilities for this image"
                elif score is not None and self.ood.flagged(score):
                    result.status = OOD
                    result.reason = (f"out of distribution: score {score:.2f} > {self.ood.flag_above:g} "
                                     "(not a frontal chest radiograph like the training films)")
                else:
                    result.probabilities = probs
                    result.labels = self.threshold(probs)
            results.append(result)
        return results

    def _infer_each(self, ready: Sequence[PreparedImage]) -> list[Any]:
        """(probabilities [14], OOD score or None) per ready input, or the exception it raised alone
        (all are tried together first; only a failed batch is retried one by one)."""
        if not ready:
            return []
        try:
            pixels = np.stack([p.pixels for p in ready])
            outputs = self.run_model(pixels)
            probs = self.probabilities(outputs[self.output_name])
            scores = None if self.ood is None else self.ood.score(outputs[self.ood.embedding_output], pixels)
            return [(probs[k], None if scores is None else float(scores[k])) for k in range(len(ready))]
        except BaseException as exc:  # noqa: BLE001
            if not item_failure(exc):
                raise
            if len(ready) == 1:
                return [exc]
        return [outcome for p in ready for outcome in self._infer_each([p])]

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

    def __call__(self, inputs: Any, bits_stored: int | None = None) -> ImageResult | list[ImageResult]:
        """Score one input -> one ImageResult; a list (any iterable) of inputs -> a list, in order.

        An input is a DICOM / PNG / JPEG path (str or PathLike), a pydicom Dataset, or one 2-D grey
        array ([H, W] or [H, W, 1]; see `array_to_grey`; integer arrays other than uint8 need
        `bits_stored`). Anything else (bytes, a dict, a set, a list item of another type) raises
        TypeError: an array of several images must be passed as a list of 2-D arrays."""
        if _single(inputs):
            return self([inputs], bits_stored=bits_stored)[0]  # type: ignore[index]
        if isinstance(inputs, (bytes, bytearray, dict, set, frozenset)) or not isinstance(inputs, Iterable):
            raise TypeError(f"ImageScorer takes a path, a 2-D array or a pydicom Dataset, or a list of them; "
                            f"not {type(inputs).__name__}")
        def prepared() -> Iterator[PreparedImage]:
            for i, item in enumerate(inputs):
                if not _single(item):
                    raise TypeError(f"input {i}: a {type(item).__name__}; each input is a path, a 2-D array or a "
                                    "pydicom Dataset")
                name = f"array[{i}]" if isinstance(item, np.ndarray) else (
                    f"dataset[{i}]" if _is_dataset(item) else str(item))
                yield self.prepare(item, name=name, bits_stored=bits_stored)

        return list(self.stream(prepared()))

__all__ = ["IMAGE_SUFFIXES", "OOD", "STATUSES", "ImageOutcome", "ImageResult", "ImageScorer", "PreparedImage",
           "array_to_grey", "prepare_input"]
