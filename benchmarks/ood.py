"""How well the image model's out-of-distribution check separates chest films from everything else.

    python -m benchmarks.ood [--model default|PATH] [--json OUT.json]

Every input goes through the public `ImageScorer` (status `out-of-distribution` when its score is
above the manifest's bound). Sets, all built from ../shared/data:
- in distribution (should NOT be flagged): the patient-level validation films of each training
  source, and the chest radiographs of the DICOM corpus that score-dicoms scores (MANIFEST.csv
  `expected = score`);
- out of distribution (should be flagged): uniform and Gaussian noise; blank frames (constant grey
  levels); the validation films inverted (negative); the non-chest radiographs of the DICOM corpus
  (WG04 RG2 hip, RG3 tibia, body part HIP / EXTREMITY), whole and as 10 random crops each (random
  position and 40-90% size, so several views of each); the lateral chest views of the corpus
  (STUDY07 DICOM and its PNG source), whole and as crops. The DICOM files are read with the reader's
  own decoding (`read_dataset`, `to_display`) but without its body-part / view checks, which would
  skip them before the model sees them.
- reported, not counted either way: the validation films rotated by 90 degrees.
Printed: per set, the number of inputs, how many were flagged and the median score.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radedge.images.dicom import read_dataset, to_display
from radedge.images.preprocess import load_image

from .data import DATA
from export.cli import command_parser, run_command

DICOM = DATA / "dicom"
NON_CHEST = ["wg04/RG2_JLSL.dcm", "wg04/RG2_JLSN.dcm", "wg04/RG2_JPLL.dcm", "wg04/RG2_JPLY_fixed.dcm",
             "wg04/RG3_J2KI.dcm", "wg04/RG3_J2KR.dcm"]
LATERAL = ["pacs_export/STUDY07/SERIES01/IM0001.dcm", "_sources/radiopaedia_covid-19-pneumonia-14-L_half.png"]
CROPS = 10


def read_any(path: Path) -> np.ndarray:
    """A corpus file as a 2-D [0, 1] image (DICOM without the scorability checks, or PNG)."""
    if path.suffix.lower() == ".png":
        return load_image(path)
    return to_display(read_dataset(path), voi=True)[0]


def crops(image: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = image.shape
    out = []
    for _ in range(n):
        ch, cw = int(h * rng.uniform(0.4, 0.9)), int(w * rng.uniform(0.4, 0.9))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(image[y:y + ch, x:x + cw]))
    return out


def corpus_chest_files() -> list[Path]:
    with open(DICOM / "MANIFEST.csv", newline="") as fh:
        return [DICOM / r["path"] for r in csv.DictReader(fh) if r["expected"] == "score"]


def build_sets(rng: np.random.Generator) -> dict[str, tuple[bool | None, list]]:
    """{set name: (should be flagged (None = not counted), inputs)}."""
    from export.images.data import DEFAULT_IMAGES, load_sources, read_image, split_by_patient

    _, val = split_by_patient(load_sources(DEFAULT_IMAGES))
    films = {src: [read_image(s.path) for s in val if s.source == src] for src in sorted({s.source for s in val})}
    sets: dict[str, tuple[bool | None, list]] = {f"validation films: {src}": (False, v) for src, v in films.items()}
    sets["DICOM corpus chest radiographs"] = (False, [str(p) for p in corpus_chest_files()])
    every = [im for v in films.values() for im in v]
    pick = [every[i] for i in rng.choice(len(every), size=min(100, len(every)), replace=False)]
    sets["uniform noise 512x512"] = (True, [rng.random((512, 512)).astype(np.float32) for _ in range(20)])
    sets["Gaussian noise 512x512"] = (True, [np.clip(rng.normal(0.5, 0.2, (512, 512)), 0, 1).astype(np.float32)
                                             for _ in range(20)])
    sets["blank frames"] = (True, [np.full((512, 512), v, np.float32) for v in np.linspace(0, 1, 11)])
    sets["inverted validation films"] = (True, [1.0 - im for im in pick])
    non_chest = [read_any(DICOM / p) for p in NON_CHEST]
    sets["non-chest radiographs (hip, tibia)"] = (True, non_chest)
    sets["non-chest radiographs, crops"] = (True, [c for im in non_chest for c in crops(im, CROPS, rng)])
    lateral = [read_any(DICOM / p) for p in LATERAL]
    sets["lateral chest views"] = (True, lateral)
    sets["lateral chest views, crops"] = (True, [c for im in lateral for c in crops(im, CROPS, rng)])
    sets["validation films rotated 90 degrees (not counted)"] = (None, [np.ascontiguousarray(np.rot90(im)) for im in pick])
    return sets


def run(model: str = "default", seed: int = 0) -> dict[str, Any]:
    from radedge.images.scorer import OOD, ImageScorer

    scorer = ImageScorer.load(model, batch_size=16)
    if scorer.ood is None:
        raise SystemExit(f"{model}: this model has no out-of-distribution check (manifest 'ood')")
    rng = np.random.default_rng(seed)
    rows = []
    for name, (should, inputs) in build_sets(rng).items():
        results = scorer(inputs)
        scores = np.array([r.ood_score for r in results if r.ood_score is not None])
        flagged = sum(r.status == OOD for r in results)
        rows.append({"set": name, "should_flag": should, "n": len(inputs), "flagged": flagged,
                     "flag_rate": round(flagged / max(1, len(inputs)), 4),
                     "median_score": round(float(np.median(scores)), 3) if len(scores) else None,
                     "not_scored": sum(r.status in ("skipped", "error") for r in results)})
    ood_rows = [r for r in rows if r["should_flag"]]
    ind_rows = [r for r in rows if r["should_flag"] is False]
    return {"model": model, "rows": rows,
            "flag_rate_out_of_distribution": round(sum(r["flagged"] for r in ood_rows) / sum(r["n"] for r in ood_rows), 4),
            "false_flag_rate_chest": round(sum(r["flagged"] for r in ind_rows) / sum(r["n"] for r in ind_rows), 4),
            "thresholds": scorer.ood.section.get("thresholds")}


def table(report: dict[str, Any]) -> str:
    lines = ["| inputs | should be flagged | n | flagged | rate | median score |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        should = {True: "yes", False: "no", None: "-"}[r["should_flag"]]
        lines.append(f"| {r['set']} | {should} | {r['n']} | {r['flagged']} | {r['flag_rate']:.3f} | {r['median_score']} |")
    lines.append(f"\nflagged out-of-distribution inputs: {report['flag_rate_out_of_distribution']:.3f}; "
                 f"chest films wrongly flagged: {report['false_flag_rate_chest']:.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = command_parser("benchmarks.ood", __doc__)
    ap.add_argument("--model", default="default", help="image model: default, a name or a folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    report = run(args.model)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    run_command(main, "benchmarks.ood")
