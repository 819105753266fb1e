"""GLS rates per image and finding: from the paired report when there is one, else a source prior.

Report-guided (Rep-GLS): the report labeler (`radedge.reports.labeler.ReportLabeler`, rules by
default) reads the paired free text and publishes `rates` via `radedge.labels.gls_rates`: hedged
mention -> +GLS_SMOOTH_MAX, certain mention -> -GLS_SHARPEN_MAX, not mentioned -> 0. Two
adjustments, both because of what the labeler's output means for an image label:
- a finding the report does not mention (rate 0) gets the source prior instead;
- a certain mention that contradicts the image label (report "no pneumonia", label pneumonia) gets
  +GLS_SMOOTH_MAX: two readers disagree, which is a hedge, not certainty;
- No Finding always takes the prior: the labeler sets it by the *absence* of other mentions, which
  in a clinical history is not a statement about the image.

Source priors (why the numbers):
- ``nih``: labels text-mined from reports by the ChestX-ray8 labeler. Under symmetric label noise
  with flip rate e the expected target is (1 - 2e) y + e, i.e. the GLS soft target with r = 2e. We
  take e = 1 - F1 of that labeler on Open-i (Wang et al. 2017, Table 2; radedge.eval.CHESTXRAY8_OPENI_F1),
  capped at GLS_SMOOTH_MAX, and the mean e of the six listed findings for the others.
- ``pediatric``: graded by two expert physicians, a third checking disagreements (Kermany et al.
  2018): r = 0.
- ``covid``: labels are the case diagnosis (often by PCR), not a reading of this image, and early or
  mild cases can look normal on a radiograph: mild smoothing r = 0.1 where the notes are silent.
- anything else (a labels table): r = 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from radedge.eval import CHESTXRAY8_OPENI_F1
from radedge.labels import FINDING_INDEX, GLS_SMOOTH_MAX, N_FINDINGS, NEGATIVE, NO_FINDING, POSITIVE

from .data import Sample, with_rates

COVID_PRIOR = 0.1


def _nih_prior() -> np.ndarray:
    errors = {name: 1.0 - f1 for name, f1 in CHESTXRAY8_OPENI_F1.items()}
    mean_error = float(np.mean(list(errors.values())))
    r = np.full(N_FINDINGS, min(GLS_SMOOTH_MAX, 2 * mean_error), np.float32)
    for name, e in errors.items():
        r[FINDING_INDEX[name]] = min(GLS_SMOOTH_MAX, 2 * e)
    return r


SOURCE_PRIORS: dict[str, np.ndarray] = {
    "nih": _nih_prior(),
    "pediatric": np.zeros(N_FINDINGS, np.float32),
    "covid": np.full(N_FINDINGS, COVID_PRIOR, np.float32),
}


def source_prior(source: str) -> np.ndarray:
    return SOURCE_PRIORS.get(source, np.zeros(N_FINDINGS, np.float32))


def report_rates(prior: np.ndarray, targets: np.ndarray, classes: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """One image's rates from its report's classes / rates [14] and its labels (rules in the module doc)."""
    out = np.where(rates == 0, prior, rates).astype(np.float32)
    contradicts = ((classes == POSITIVE) & (targets == 0)) | ((classes == NEGATIVE) & (targets == 1))
    out[contradicts] = GLS_SMOOTH_MAX
    out[NO_FINDING] = prior[NO_FINDING]
    return out


RATE_MODES = ("gls", "priors", "bce")


def assign_rates(samples: Sequence[Sample], mode: str = "gls", labeler: str = "rules") -> list[Sample]:
    """Samples with GLS rates set: mode "gls" (reports + priors), "priors" (source priors only, the
    reports ignored: what the report guidance adds is measured against it) or "bce" (r = 0)."""
    if mode == "bce":
        return with_rates(samples, np.zeros((len(samples), N_FINDINGS), np.float32))
    if mode not in RATE_MODES:
        raise ValueError(f"rate mode must be one of {RATE_MODES}, got {mode!r}")
    rates = np.stack([source_prior(s.source) for s in samples])
    paired = [i for i, s in enumerate(samples) if s.note] if mode == "gls" else []
    if paired:
        from radedge.reports.labeler import ReportLabeler

        results = ReportLabeler.load(labeler)([samples[i].note for i in paired])
        for i, res in zip(paired, results):
            if res.ok:
                rates[i] = report_rates(rates[i], samples[i].targets, res.classes, res.rates)
    return with_rates(samples, rates * np.stack([s.mask for s in samples]))


def describe(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Mean rate over labelled entries per source (for logs and the manifest)."""
    out: dict[str, dict[str, float]] = {}
    for source in sorted({s.source for s in samples}):
        group = [s for s in samples if s.source == source]
        r = np.stack([s.rates for s in group])
        m = np.stack([s.mask for s in group]) > 0
        out[source] = {"mean_rate": round(float(r[m].mean()), 4) if m.any() else 0.0,
                       "share_sharpened": round(float((r[m] < 0).mean()), 4) if m.any() else 0.0,
                       "share_smoothed": round(float((r[m] > 0).mean()), 4) if m.any() else 0.0}
    return out


__all__ = ["COVID_PRIOR", "RATE_MODES", "SOURCE_PRIORS", "assign_rates", "describe", "report_rates", "source_prior"]
