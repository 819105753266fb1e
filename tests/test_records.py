"""radedge.io.records: append-only CSV / JSONL outputs that resume after a torn write."""
from __future__ import annotations

from pathlib import Path

import pytest

from radedge.io.records import RecordWriter


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_record_writer_resumes_after_torn_write(tmp_path: Path, suffix: str):
    out = tmp_path / f"out{suffix}"
    cols = ["id", "text"]
    with RecordWriter(out, cols, resume=False) as w:
        w.write({"id": "1", "text": "line one\nwith a newline, and comma"})
        w.write({"id": "2", "text": "two"})
    with open(out, "a", encoding="utf-8") as f:  # a kill in the middle of record 3
        f.write('3,"half a rec' if suffix == ".csv" else '{"id": "3", "te')
    with RecordWriter(out, cols, resume=True) as w:
        assert [r["id"] for r in w.existing] == ["1", "2"]
        assert list(w.existing)[0]["text"] == "line one\nwith a newline, and comma"
        w.write({"id": "3", "text": "three"})
    with RecordWriter(out, cols, resume=True) as w:
        assert [str(r["id"]) for r in w.existing] == ["1", "2", "3"]


def test_record_writer_rejects_unknown_format(tmp_path: Path):
    with pytest.raises(ValueError):
        RecordWriter(tmp_path / "out.txt", ["a"])
