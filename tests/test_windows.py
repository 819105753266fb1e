"""radedge.reports.windows: sections -> tokenizer windows -> length-bucketed batches -> combine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, processors
from tests.tiny_models import write_tokenizer

from radedge.errors import ChecksumError, ManifestError
from radedge.labels import BLANK, NEGATIVE, POSITIVE, UNCERTAIN
from radedge.manifest import Manifest
from radedge.reports.windows import ReportWindows, combine, combine_reports, not_mentioned, softmax

LONG = " ".join(["heart size is normal no pneumothorax there is a small left pleural effusion"] * 12)


@pytest.fixture
def tokenizer_file(tmp_path: Path) -> Path:
    write_tokenizer(tmp_path)
    return tmp_path / "tokenizer.json"


def windows_for(tokenizer_file: Path, max_length: int = 16, stride: int = 4, template: bool = False) -> ReportWindows:
    tok = Tokenizer.from_file(str(tokenizer_file))
    if template:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                                                     ("[SEP]", tok.token_to_id("[SEP]"))])
    return ReportWindows(tok, max_length, stride)


def test_short_report_is_one_window_of_its_findings(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file, max_length=64)
    text = "INDICATION: possible pneumonia\n\nFINDINGS: small left pleural effusion."
    [window] = w.encode([text])
    plain = Tokenizer.from_file(str(tokenizer_file))
    assert window.owner == 0
    assert window.ids.dtype == np.int64
    assert window.ids.tolist() == plain.encode("small left pleural effusion.").ids  # indication dropped


def test_long_report_windows_overlap_by_stride(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file, max_length=16, stride=4)
    windows = w.encode([LONG])
    full = Tokenizer.from_file(str(tokenizer_file)).encode(LONG).ids
    assert len(windows) > 3 and all(len(x) <= 16 for x in windows)
    for a, b in zip(windows, windows[1:]):
        assert a.ids[-4:].tolist() == b.ids[:4].tolist()  # `stride` tokens shared
    rebuilt = windows[0].ids.tolist() + [t for x in windows[1:] for t in x.ids[4:].tolist()]
    assert rebuilt == full  # nothing lost, nothing repeated beyond the overlap


def test_post_processor_special_tokens_in_every_window(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file, max_length=16, stride=4, template=True)
    cls_id, sep_id = w.tokenizer.token_to_id("[CLS]"), w.tokenizer.token_to_id("[SEP]")
    windows = w.encode([LONG])
    assert len(windows) > 3
    for x in windows:
        assert len(x) <= 16 and x.ids[0] == cls_id and x.ids[-1] == sep_id


def test_empty_and_header_only_texts_have_no_windows(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file)
    windows = w.encode(["", "   \n", "FINDINGS:", "no pneumothorax"])
    assert [x.owner for x in windows] == [3]


def test_batches_sort_by_length_and_pad_per_batch(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file, max_length=16, stride=4)
    texts = ["no pneumothorax", LONG, "heart size is normal", "effusion", LONG[:120]]
    windows = w.encode(texts)
    seen = []
    lengths = []
    for input_ids, mask, owners in w.batches(windows, batch_size=3):
        assert input_ids.dtype == np.int64 and mask.dtype == np.int64 and input_ids.shape == mask.shape
        assert len(owners) <= 3
        row_lengths = mask.sum(axis=1)
        assert row_lengths.max() == input_ids.shape[1]  # padded to the longest in this batch only
        assert (input_ids[mask == 0] == w.pad_id).all()
        lengths.extend(row_lengths.tolist())
        seen.extend(owners.tolist())
    assert lengths == sorted(lengths)
    assert sorted(seen) == sorted(x.owner for x in windows)


def test_batches_shuffled_for_training_still_cover_every_window(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file, max_length=16, stride=4)
    windows = w.encode([LONG, "no pneumothorax", "effusion", LONG[:200]])
    batches = list(w.batches(windows, batch_size=2, rng=np.random.default_rng(0)))
    assert sum(len(b.owners) for b in batches) == len(windows)
    with pytest.raises(ValueError):
        next(w.batches(windows, batch_size=0))


def test_pad_id_is_the_tokenizers_pad_token(tokenizer_file: Path) -> None:
    w = windows_for(tokenizer_file)
    assert w.pad_id == w.tokenizer.token_to_id("[PAD]")
    assert w.tokenizer.padding is None  # padding is done per batch, not by the tokenizer


def test_stride_must_leave_room(tokenizer_file: Path) -> None:
    with pytest.raises(ManifestError):
        windows_for(tokenizer_file, max_length=8, stride=8)
    with pytest.raises(ManifestError):
        windows_for(tokenizer_file, max_length=2, stride=0, template=True)


def test_from_model_dir_reads_the_manifest(tiny_report_model: Path) -> None:
    w = ReportWindows.from_model_dir(tiny_report_model)
    manifest = Manifest.read(tiny_report_model)
    assert (w.max_length, w.stride) == (manifest.max_length, manifest.stride)
    (tiny_report_model / "tokenizer.json").write_text("not a tokenizer")
    with pytest.raises(ChecksumError):  # checked against its sha256 before it is parsed
        ReportWindows.from_model_dir(tiny_report_model)


def one_hot(classes: list[int]) -> np.ndarray:
    return np.eye(4, dtype=np.float32)[classes]


def test_combine_keeps_a_mention_seen_by_one_window() -> None:
    a = one_hot([BLANK] * 14)
    b = one_hot([BLANK] * 14)
    b[10] = [0.1, 0.8, 0.05, 0.05]  # only the second window sees the effusion
    a[9] = [0.3, 0.0, 0.7, 0.0]  # only the first sees the pneumothorax denial
    out = combine(np.stack([a, b, a]))
    assert out[10].tolist() == pytest.approx([0.1, 0.8, 0.05, 0.05])
    assert out[9].tolist() == pytest.approx([0.3, 0.0, 0.7, 0.0])
    assert out[0].argmax() == BLANK


def test_combine_picks_the_most_confident_mention_and_is_identity_for_one_window() -> None:
    a = one_hot([BLANK] * 14)
    b = one_hot([BLANK] * 14)
    a[4] = [0.4, 0.1, 0.1, 0.4]  # mention p = 0.6, uncertain
    b[4] = [0.1, 0.1, 0.7, 0.1]  # mention p = 0.9, negative: wins
    assert combine(np.stack([a, b]))[4].argmax() == NEGATIVE
    assert combine(a[None]).tolist() == a.tolist()
    assert combine(np.zeros((0, 14, 4))).tolist() == not_mentioned().tolist()
    with pytest.raises(ValueError):
        combine(np.zeros((2, 13, 4)))


def test_combine_reports_groups_windows_by_owner() -> None:
    probs = np.stack([one_hot([POSITIVE] * 14), one_hot([UNCERTAIN] * 14), one_hot([NEGATIVE] * 14)])
    out = combine_reports(probs, [2, 0, 2], 4)
    assert out.shape == (4, 14, 4)
    assert out[0].argmax(-1).tolist() == [UNCERTAIN] * 14
    assert out[1].argmax(-1).tolist() == [BLANK] * 14  # no windows: not mentioned
    assert out[2].argmax(-1).tolist() == [POSITIVE] * 14  # tie in confidence: the first window
    with pytest.raises(ValueError):
        combine_reports(probs, [0, 1], 2)


def test_softmax_rows_sum_to_one() -> None:
    p = softmax(np.array([[1000.0, 0.0, -1000.0, 3.0]]))
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)


# ---- token offsets back into the report (evidence for the student) --------------------------------
OFFSET_REPORTS = [
    "INDICATION: possible pneumonia\r\n\r\nFINDINGS: small left pleural effusion.\r\n"
    "IMPRESSION: small effusion, no pneumothorax.",
    "Café au lait: İİ small left pleural effusion.\nno pneumothorax",  # non-ASCII, no header
    "  FINDINGS:\n\n   " + LONG,  # several windows
]


@pytest.mark.parametrize("template", [False, True])
def test_window_offsets_point_into_the_report(tokenizer_file: Path, template: bool) -> None:
    w = windows_for(tokenizer_file, max_length=16, stride=4, template=template)
    windows = w.encode_with_offsets(OFFSET_REPORTS)
    assert [x.ids.tolist() for x in windows] == [x.ids.tolist() for x in w.encode(OFFSET_REPORTS)]
    plain = Tokenizer.from_file(str(tokenizer_file))  # the same tokenizer, without windows or specials
    seen = {i: [] for i in range(len(OFFSET_REPORTS))}
    for window in windows:
        assert window.offsets is not None and window.offsets.shape == (len(window), 2)
        report = OFFSET_REPORTS[window.owner]
        for token_id, (start, end) in zip(window.ids.tolist(), window.offsets.tolist()):
            if start < 0:
                assert template and plain.id_to_token(token_id) in ("[CLS]", "[SEP]")
                continue
            piece = report[start:end]
            # the token is the report's text there, as the tokenizer normalised it (lower case, no accents)
            token = plain.id_to_token(token_id)
            if token != "[UNK]":
                assert plain.normalizer.normalize_str(piece) == token.removeprefix("##"), (piece, token)
            seen[window.owner].append(piece)
    assert "pneumonia" not in "".join(seen[0])  # the indication was not read, and no offset points there
    assert "effusion" in seen[0] and "pneumothorax" in seen[0]


def test_report_offsets_split_by_section() -> None:
    from radedge.reports.sections import read_text
    from radedge.reports.windows import report_offsets

    report = "HISTORY: cough\nFINDINGS: no effusion\nIMPRESSION: normal"
    read = read_text(report)
    assert read.text == "no effusion\n\nnormal"
    out = report_offsets(read, [(0, 0), (3, 11), (13, 19)], [1, 0, 0])
    assert out[0].tolist() == [-1, -1]
    assert report[out[1, 0]:out[1, 1]] == "effusion"
    assert report[out[2, 0]:out[2, 1]] == "normal"
