"""Where the benchmark inputs come from: ../shared/data beside the checkout (or $RADEDGE_SHARED)."""
from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADEDGE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
OPENI = DATA / "openi"


def rel(path: str | os.PathLike) -> str:
    """A path as recorded in results: relative to the checkout when inside it (results are committed)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def absolute(recorded: str) -> Path:
    """The file a recorded path names (relative ones are relative to the checkout)."""
    p = Path(recorded)
    return p if p.is_absolute() else ROOT / p


def openi_reports(limit: int | None = None) -> list[dict]:
    """Open-i dev reports (id, text, ...), in file order; [] when the data is not here."""
    path = OPENI / "reports.jsonl"
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def holdout_ids(ids: list[str]) -> set[str]:
    """The report hold-out of export/splits.py (never trained on), as a set of ids."""
    from export.splits import split_ids

    return set(split_ids(ids)[1])
