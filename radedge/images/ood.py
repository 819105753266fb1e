"""Is this input a frontal chest radiograph like the ones the model learned from?

An image model scores whatever it is given: uniform noise, a blank frame, an inverted film or a
knee come out with confident findings. Before findings are reported, each scored input gets an
out-of-distribution (OOD) score from Mahalanobis distances (Lee et al. 2018), each fitted on the
training chest films by the trainer (`export/images/ood.py`) and divided by its threshold:

- "embedding": the model's pooled embedding (the graph's second output): does the network
  "recognise" it;
- "statistics": a few image statistics of the preprocessed input (`image_statistics`): brightness,
  contrast, fine-grain noise, a bright mediastinum between darker lungs. These catch what an
  embedding trained only on chest films may map anywhere (noise, blank frames, inverted films);
- "layout": a 4 x 4 thumbnail of the input plus those statistics (`layout_features`): where bright
  and dark regions lie. A frontal chest film has its own coarse layout; a hip, a tibia or a lateral
  view does not, even when the network's embedding lands near its training films.

Each threshold is set on the validation chest films (a fixed false-flag rate, see the manifest's
`ood`), so the score reads: 1.0 = as far as the validation films' flagged tail; 2.0 = twice that
distance. An input whose score exceeds 1.0 gets status `out-of-distribution` and no findings.
The fitted means and whitening matrices live in a file of the model folder (sha256 in the manifest).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

STATISTICS = ("mean", "std", "fine_grain", "mediastinum_contrast", "dark_share")
FLAG_ABOVE = 1.0
LAYOUT_GRID = 4
PARTS = ("embedding", "statistics", "layout")


def image_statistics(pixels: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """float64 [len(STATISTICS)] of one preprocessed input [C, S, S], back on the [0, 1] scale.

    mean / std of the image; fine_grain: mean |image - 3x3 box blur| (sensor noise, random pixels);
    mediastinum_contrast: mean of the central vertical band minus the two lung-field bands beside it,
    rows 20-80% (positive on a frontal chest film, negative when inverted); dark_share: fraction of
    pixels below 0.1 (background, collimation, padding).
    """
    image = np.asarray(pixels[0], dtype=np.float32) * float(spec["std"][0]) + float(spec["mean"][0])
    image = np.nan_to_num(np.clip(image, 0.0, 1.0))
    size = image.shape[0]
    blur = cv2.blur(image, (3, 3))
    rows = slice(int(0.2 * size), int(0.8 * size))
    band = lambda a, b: float(image[rows, int(a * size):int(b * size)].mean())  # noqa: E731
    centre = band(0.42, 0.58)
    lungs = 0.5 * (band(0.18, 0.36) + band(0.64, 0.82))
    return np.array([image.mean(), image.std(), np.abs(image - blur).mean(), centre - lungs,
                     (image < 0.1).mean()], dtype=np.float64)


def layout_features(pixels: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """float64 [LAYOUT_GRID ** 2 + len(STATISTICS)]: the input (back on [0, 1]) shrunk to a
    LAYOUT_GRID x LAYOUT_GRID thumbnail (area averaging), then `image_statistics`."""
    image = np.asarray(pixels[0], dtype=np.float32) * float(spec["std"][0]) + float(spec["mean"][0])
    image = np.nan_to_num(np.clip(image, 0.0, 1.0))
    thumb = cv2.resize(image, (LAYOUT_GRID, LAYOUT_GRID), interpolation=cv2.INTER_AREA).ravel()
    return np.concatenate([thumb.astype(np.float64), image_statistics(pixels, spec)])


def part_features(name: str, pixels: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """[n, d] features of a pixel-based part ("statistics" or "layout") for preprocessed inputs [n, C, S, S]."""
    fn = {"statistics": image_statistics, "layout": layout_features}[name]
    width = len(STATISTICS) + (LAYOUT_GRID ** 2 if name == "layout" else 0)
    return np.stack([fn(p, spec) for p in pixels]) if len(pixels) else np.zeros((0, width))


def mahalanobis(x: np.ndarray, mean: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """sqrt((x - mean)^T Sigma^-1 (x - mean)) per row, with whiten^T whiten = Sigma^-1."""
    return np.linalg.norm((np.asarray(x, np.float64) - mean) @ whiten.T, axis=1)


class OODCheck:
    """The manifest's `ood` section plus its statistics file; `score` gives one number per input."""

    def __init__(self, section: Mapping[str, Any], arrays: Mapping[str, np.ndarray], spec: Mapping[str, Any]):
        self.section = dict(section)
        self.spec = spec
        self.embedding_output = str(section.get("embedding_output", "embedding"))
        self.flag_above = float(section.get("flag_above", FLAG_ABOVE))
        unknown = set(section["thresholds"]) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown out-of-distribution parts {sorted(unknown)} (known: {PARTS})")
        self.parts = {name: (np.asarray(arrays[f"{name}_mean"], np.float64),
                             np.asarray(arrays[f"{name}_whiten"], np.float64),
                             float(section["thresholds"][name]))
                      for name in PARTS if name in section["thresholds"]}

    @classmethod
    def load(cls, folder: str | os.PathLike, section: Mapping[str, Any], spec: Mapping[str, Any]) -> "OODCheck":
        with np.load(Path(folder) / section["file"], allow_pickle=False) as data:
            return cls(section, {k: data[k] for k in data.files}, spec)

    def distances(self, embeddings: np.ndarray, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Per part, the Mahalanobis distance divided by its threshold ([n] each)."""
        out = {}
        for name, (mean, whiten, threshold) in self.parts.items():
            x = embeddings if name == "embedding" else part_features(name, pixels, self.spec)
            out[name] = mahalanobis(x, mean, whiten) / threshold
        return out

    def score(self, embeddings: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """[n] OOD score: the largest scaled distance (NaN embeddings count as far)."""
        d = np.stack(list(self.distances(embeddings, pixels).values()))
        return np.nan_to_num(d.max(axis=0), nan=np.inf)

    def flagged(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.flag_above


__all__ = ["FLAG_ABOVE", "LAYOUT_GRID", "OODCheck", "PARTS", "STATISTICS", "image_statistics", "layout_features",
           "mahalanobis", "part_features"]
