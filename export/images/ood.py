"""Fit the runtime's out-of-distribution check (`radedge.images.ood`) for a shipped image model.

Two Gaussians, fitted on the *training* chest films with Ledoit-Wolf shrinkage (the embedding has
more dimensions than a small training set pins down): one on the model's pooled embedding, one on
`radedge.images.ood.image_statistics`. Each Mahalanobis distance gets the threshold that flags
FALSE_FLAG / 2 of the *validation* chest films, so at most FALSE_FLAG of them are flagged in all
(the two parts overlap). Embeddings come from the shipped ONNX graph itself, so the check measures
what the runtime computes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from sklearn.covariance import LedoitWolf

from radedge.images.ood import FLAG_ABOVE, STATISTICS, image_statistics, mahalanobis

FALSE_FLAG = 0.01
OOD_FILE = "ood.npz"


def fit_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, whitening matrix W with W^T W = inverse shrunk covariance)."""
    lw = LedoitWolf().fit(np.asarray(x, np.float64))
    precision = np.linalg.inv(lw.covariance_)
    return lw.location_, np.linalg.cholesky(precision).T


def statistics(pixels: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    return np.stack([image_statistics(p, spec) for p in pixels])


def fit_ood(train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray], folder: Path,
            embedding_output: str = "embedding", false_flag: float = FALSE_FLAG) -> dict[str, Any]:
    """Write folder/OOD_FILE and return the manifest's `ood` section. `train` / `val`: {"embedding":
    [n, d], "statistics": [n, len(STATISTICS)]} of chest films."""
    arrays: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    for name in ("embedding", "statistics"):
        mean, whiten = fit_gaussian(train[name])
        arrays[f"{name}_mean"], arrays[f"{name}_whiten"] = mean.astype(np.float64), whiten.astype(np.float64)
        d = mahalanobis(val[name], mean, whiten)
        thresholds[name] = round(float(np.quantile(d, 1 - false_flag / 2)), 4)
    np.savez(folder / OOD_FILE, **arrays)
    return {"file": OOD_FILE, "embedding_output": embedding_output, "statistics": list(STATISTICS),
            "thresholds": thresholds, "flag_above": FLAG_ABOVE,
            "rule": f"Mahalanobis distances (Ledoit-Wolf, fitted on training chest films) on the embedding and "
                    f"on image statistics, each divided by its threshold (the {100 * (1 - false_flag / 2):.1f}th "
                    f"percentile on validation chest films); score = the larger; flagged above {FLAG_ABOVE}"}


__all__ = ["FALSE_FLAG", "OOD_FILE", "fit_gaussian", "fit_ood", "statistics"]
