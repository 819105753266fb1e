"""Fit the runtime's out-of-distribution check (`radedge.images.ood`) for a shipped image model.

One Gaussian per part of `radedge.images.ood.PARTS`, fitted on the *training* chest films with
Ledoit-Wolf shrinkage (the embedding has more dimensions than a small training set pins down): the
model's pooled embedding, `image_statistics`, and `layout_features` (a 4 x 4 thumbnail plus the
statistics). Each Mahalanobis distance gets the threshold that flags FALSE_FLAG / 3 of the
*validation* chest films, so at most FALSE_FLAG of them are flagged in all (the parts overlap). Embeddings come from the shipped ONNX graph itself, so the check measures
what the runtime computes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from sklearn.covariance import LedoitWolf

from radedge.images.ood import FLAG_ABOVE, PARTS, STATISTICS, mahalanobis, part_features

FALSE_FLAG = 0.01
OOD_FILE = "ood.npz"


def fit_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, whitening matrix W with W^T W = inverse shrunk covariance)."""
    lw = LedoitWolf().fit(np.asarray(x, np.float64))
    precision = np.linalg.inv(lw.covariance_)
    return lw.location_, np.linalg.cholesky(precision).T


def features(embeddings: np.ndarray, pixels: np.ndarray, spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """{part: [n, d]} of every part, for chest films' embeddings and preprocessed pixels."""
    return {name: embeddings if name == "embedding" else part_features(name, pixels, spec) for name in PARTS}


def fit_ood(train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray], folder: Path,
            embedding_output: str = "embedding", false_flag: float = FALSE_FLAG) -> dict[str, Any]:
    """Write folder/OOD_FILE and return the manifest's `ood` section. `train` / `val`: `features`
    of chest films."""
    arrays: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    for name in PARTS:
        mean, whiten = fit_gaussian(train[name])
        arrays[f"{name}_mean"], arrays[f"{name}_whiten"] = mean.astype(np.float64), whiten.astype(np.float64)
        d = mahalanobis(val[name], mean, whiten)
        thresholds[name] = round(float(np.quantile(d, 1 - false_flag / len(PARTS))), 4)
    np.savez(folder / OOD_FILE, **arrays)
    return {"file": OOD_FILE, "embedding_output": embedding_output, "statistics": list(STATISTICS),
            "thresholds": thresholds, "flag_above": FLAG_ABOVE,
            "rule": f"Mahalanobis distances (Ledoit-Wolf, fitted on training chest films) on the embedding, on "
                    f"image statistics and on a 4 x 4 thumbnail plus those statistics, each divided by its "
                    f"threshold (the {100 * (1 - false_flag / len(PARTS)):.2f}th percentile on validation chest "
                    f"films); score = the largest; flagged above {FLAG_ABOVE}"}


__all__ = ["FALSE_FLAG", "OOD_FILE", "features", "fit_gaussian", "fit_ood"]
