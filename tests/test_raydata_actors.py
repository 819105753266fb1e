"""The Ray actors' own code, run in this process (pyarrow needed, no running Ray): packed output (one
row per batch, its rows as Arrow IPC bytes) reads back to the same rows; a DICOM actor sets its
process up as one machine's decoding workers are."""
from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow", reason="the ray extra is not installed (pip install '.[ray]')")

from radedge.labels import FINDINGS  # noqa: E402
from radedge.pipelines import raydata  # noqa: E402


def _scored(path: str, extra: dict | None = None) -> dict:
    probs = {f: 0.25 for f in FINDINGS}
    return {"path": path, "status": "scored", "study_uid": "1.2", "series_uid": "1.2.3", "sop_uid": path,
            "probabilities": probs, "labels": {f: 0 for f in FINDINGS}, "reason": None, "error_type": None,
            **(extra or {})}


def _output_table(records: list[dict], block: int) -> "pa.Table":
    """What a job's DICOM actor builds for one call: the input tags kept, the fields typed."""
    tags = pa.table({"_block": [block] * len(records), "_seq": list(range(len(records))),
                     "_size": [len(records)] * len(records), "path": [r["path"] for r in records],
                     "file": ["/x/" + r["path"] for r in records]})
    return raydata._table(records, tags, {"bytes", "path", "file"}, raydata.IMAGE_FIELDS)


def test_packed_call_is_one_row_and_unpacks_to_the_same_table() -> None:
    error = {"path": "b.dcm", "status": "error", "study_uid": None, "series_uid": None, "sop_uid": None,
             "probabilities": None, "labels": None, "reason": "truncated", "error_type": "InvalidDicomError"}
    table = _output_table([_scored("a.dcm", {"ood_score": 0.5}), error], block=3)
    packed = raydata._output(table, packed=True)
    assert packed.num_rows == 1 and packed.column_names == [raydata.PACKED]
    back = raydata.unpack(packed)
    assert back.equals(table) and back.schema == table.schema
    assert back.column("labels").to_pylist()[1] is None  # a null struct stays null, typed
    assert raydata._output(table, packed=False) is table


def test_unpack_joins_calls_whose_extra_fields_differ() -> None:
    first = raydata._output(_output_table([_scored("a.dcm", {"ood_score": 0.5})], block=0), packed=True)
    second = raydata._output(_output_table([_scored("b.dcm"), _scored("c.dcm")], block=0), packed=True)
    back = raydata.unpack(pa.concat_tables([first, second]))
    assert back.column("path").to_pylist() == ["a.dcm", "b.dcm", "c.dcm"]
    assert back.column("ood_score").to_pylist() == ["0.5", None, None]
    assert back.column("_seq").to_pylist() == [0, 0, 1]


def test_unpack_of_no_rows_says_so() -> None:
    with pytest.raises(ValueError, match="no packed rows"):
        raydata.unpack(pa.table({raydata.PACKED: pa.array([], pa.large_binary())}))


def test_dicom_actor_sets_up_its_process_as_a_decoding_worker(monkeypatch) -> None:
    from radedge.pipelines import workers

    calls = []
    monkeypatch.setattr(workers, "decoding_process", calls.append)
    raydata._DicomActor("default", "PA,AP", batch_size=8, threads=1, max_pixels=None, reduced=True)
    raydata._DicomActor("default", "PA,AP", batch_size=8, threads=None, max_pixels=None, reduced=True)
    assert calls == [1, 1]  # openjpeg threads: the actor's cores (threads), at least one
