"""Reading back what a command wrote, for the tests that check its records."""
from __future__ import annotations

import csv
import json
from pathlib import Path


def read_records(path: Path) -> list[dict]:
    """The records of a .csv (cells as strings) or .jsonl output, in file order."""
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    return [json.loads(line) for line in path.read_text().splitlines()]
