"""Every file of shared/data/dicom handled as its MANIFEST.csv expects, checked through score-dicoms.

    python -m benchmarks.dicom_corpus [--model default|standin|PATH] [--workers 2]

Runs `score_folder` (what `radedge score-dicoms` runs) over the corpus and prints, per file, the
expected handling (score / skip: reason / error: reason) next to the record it got, then the count
of matches. A skip matches when the status is "skipped" and the manifest's reason (up to its first
parenthesis or semicolon, e.g. "body part EXTREMITY") appears in the recorded reason. Files that
are not in the manifest (its README.md and MANIFEST.csv) must be skipped as "not a DICOM file".
"""
from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .dicom_throughput import DATA, load_scorer

STATUS_OF = {"score": "scored", "skip": "skipped", "error": "error"}


def read_manifest(root: Path = DATA) -> dict[str, dict[str, str]]:
    with open(root / "MANIFEST.csv", newline="") as fh:
        return {row["path"]: row for row in csv.DictReader(fh)}


def expected_matches(expected: str, status: str, reason: str) -> bool:
    """Does a record (status, reason) satisfy the manifest's `expected` cell?"""
    kind = expected.split(":")[0].strip()
    if STATUS_OF.get(kind) != status:
        return False
    if kind == "skip":
        key = expected.split(":", 1)[1].split("(")[0].split(";")[0].strip()
        return key.lower() in reason.lower()
    return True


def mismatches(records: Iterable[Mapping[str, Any]], manifest: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per file handled otherwise than expected (empty: all good)."""
    by_path = {str(r["path"]): r for r in records}
    bad = [f"{p}: no record" for p in manifest if p not in by_path]
    for path, rec in by_path.items():
        expected = manifest[path]["expected"] if path in manifest else "skip: not a DICOM file"
        if not expected_matches(expected, str(rec["status"]), str(rec.get("reason", ""))):
            bad.append(f"{path}: expected {expected!r}, got {rec['status']} {rec.get('reason', '')!r}")
    return bad


def run(model: str = "default", workers: int = 2) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    from radedge.commands.score_dicoms import CSV_COLUMNS, score_folder
    from radedge.io.records import RecordWriter

    scorer, label = load_scorer(model)
    print(f"model: {label}")
    with tempfile.TemporaryDirectory(prefix="radedge-corpus-") as tmp:
        out = Path(tmp) / "corpus.csv"
        with RecordWriter(out, CSV_COLUMNS, resume=False) as writer:
            summary = score_folder(scorer, DATA, writer, workers=workers)
        with open(out, newline="") as fh:
            records = list(csv.DictReader(fh))
    print(f"score_folder: {summary.line()}")
    return records, read_manifest()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dicom_corpus", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    records, manifest = run(args.model, args.workers)
    for rec in records:
        expected = manifest.get(rec["path"], {}).get("expected", "skip: not a DICOM file (not in MANIFEST)")
        ok = "ok  " if expected_matches(expected, rec["status"], rec["reason"]) else "FAIL"
        print(f"{ok} {rec['path'][:52]:52s} expected {expected[:38]:38s} got {rec['status']:7s} {rec['reason'][:60]}")
    bad = mismatches(records, manifest)
    print(f"{len(records) - len(bad)}/{len(records)} files handled as expected "
          f"({len(manifest)} in MANIFEST.csv + {len(records) - len(manifest)} not listed)")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
