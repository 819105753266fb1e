"""Report text -> model inputs, and per-window outputs -> one result per report.

This is the ONE place where text becomes token windows, shared by the distillation trainer
(`export/`) and the runtime (`ReportLabeler`), so a model is always served exactly as it was trained:

1. `sections.findings_text` keeps FINDINGS + IMPRESSION (the whole text when there is no header);
2. the model's own `tokenizers` tokenizer encodes it with truncation at `max_length` and
   `stride` tokens of overlap; the overflowing encodings become further windows, each with the
   special tokens the tokenizer's post-processor adds (e.g. `[CLS] ... [SEP]`);
3. `batches` sorts windows by length and pads each batch only to its longest window;
4. `combine` folds the per-window class probabilities back into one `[14, 4]` per report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from ..errors import ManifestError
from ..labels import BLANK, N_CLASSES, N_FINDINGS
from .sections import ReadText, read_text

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

    from ..manifest import Manifest

# Tokens tried, in order, as the padding token when the tokenizer has no padding configured.
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<|padding|>")


@dataclass(frozen=True)
class Window:
    """One model input: the token ids of one window of report `owner` (index into the texts)."""

    owner: int
    ids: np.ndarray  # int64 [length], special tokens included
    # int64 [length, 2]: each token's [start, end) in the report string (see `report_offsets`);
    # only from `encode_with_offsets`, else None
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class Batch(NamedTuple):
    """A padded batch; unpacks as `input_ids, attention_mask, owners`."""

    input_ids: np.ndarray  # int64 [batch, longest window in the batch]
    attention_mask: np.ndarray  # int64, 1 for tokens, 0 for padding
    owners: np.ndarray  # int64 [batch]: the report each row belongs to


class ReportWindows:
    """Tokenizer + window rule of one report model. Thread-safe once built (encoding only reads it).

    `stride` is the number of tokens shared by consecutive windows of a long report (the
    `tokenizers` meaning of stride), so a phrase cut by one window boundary is whole in the next.
    The tokenizer given is configured in place (truncation on, padding off): give each
    ReportWindows its own tokenizer.
    """

    def __init__(self, tokenizer: "Tokenizer", max_length: int, stride: int = 0,
                 use_sections: bool = True) -> None:
        special = tokenizer.num_special_tokens_to_add(False)
        if max_length - special < 1:
            raise ManifestError(f"max_length {max_length} leaves no room for text beside {special} special tokens")
        if not 0 <= stride < max_length - special:
            raise ManifestError(f"stride {stride} must be >= 0 and below max_length minus special tokens "
                                f"({max_length - special})")
        self.pad_id = _pad_id(tokenizer)
        tokenizer.no_padding()  # windows are padded per batch, by `batches`
        tokenizer.enable_truncation(max_length, stride=stride, strategy="longest_first", direction="right")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.stride = stride
        self.use_sections = use_sections

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, manifest: "Manifest | None" = None) -> "ReportWindows":
        """The windows of a report model folder, as its manifest describes them."""
        from tokenizers import Encoding, Tokenizer

        from ..manifest import Manifest

        manifest = manifest or Manifest.read(model_dir)
        if not manifest.tokenizer or not manifest.max_length:
            raise ManifestError(f"{model_dir}: a report model needs tokenizer and max_length in its manifest")
        path = Path(model_dir) / manifest.tokenizer
        # The bytes checked against the manifest's sha256 are the bytes parsed: the tokenizer must be
        # one of the manifest's files, inside the folder (a path elsewhere would load unverified).
        data = manifest.read_verified(model_dir, manifest.tokenizer)
        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises a bare Exception on unreadable files
            raise ManifestError(f"{path}: cannot load the tokenizer ({exc})") from exc
        return cls(tokenizer, int(manifest.max_length), int(manifest.stride or 0))

    def model_text(self, text: str) -> str:
        """The part of a report the model reads (FINDINGS + IMPRESSION, or all of it)."""
        return self.model_read(text).text

    def model_read(self, text: str) -> ReadText:
        """`model_text` with the offsets of its parts in the report (`sections.ReadText`)."""
        return read_text(text) if self.use_sections else ReadText(text, ((0, len(text)),) if text else ())

    def encode(self, texts: Sequence[str]) -> list[Window]:
        """Windows of every text, in text order (a report's windows in reading order).

        A text with nothing to read (empty, or only headers) gets NO window: there is nothing for a
        model to see, and `combine_reports` gives such a report "not mentioned" everywhere.
        """
        return self.encode_prepared([self.model_text(t) for t in texts])

    def encode_prepared(self, model_texts: Sequence[str]) -> list[Window]:
        """`encode` for texts that already went through `model_text` (callers that need the
        section text anyway, to tell an empty report, call sections only once)."""
        return [Window(owner, np.asarray(piece.ids, dtype=np.int64)) for owner, piece in self._pieces(model_texts)]

    def encode_with_offsets(self, reports: Sequence[str]) -> list[Window]:
        """`encode`, with `Window.offsets`: for every token of every window, its `[start, end)` in
        the *report string as given* (not the section text the model read), so that
        `reports[w.owner][start:end]` is the text of that token. Special tokens ([CLS], [SEP],
        padding) have `[-1, -1]`.

        For evidence spans (the student labeler): pick the token(s) a head weighted most in window
        `w`, then `w.offsets[token]` is where to point in the report; merge neighbouring tokens
        with `min(start), max(end)`. Offsets survive section extraction (`sections.ReadText`),
        CRLF line ends and non-ASCII text, because they are `tokenizers` character offsets into
        the read text mapped back by `report_offsets`.
        """
        reads = [self.model_read(t) for t in reports]
        windows = []
        for owner, piece in self._pieces([r.text for r in reads]):
            offsets = report_offsets(reads[owner], piece.offsets, piece.special_tokens_mask)
            windows.append(Window(owner, np.asarray(piece.ids, dtype=np.int64), offsets))
        return windows

    def _pieces(self, model_texts: Sequence[str]) -> Iterator[tuple[int, "Encoding"]]:
        """(owner, encoding) of every window, in text order; a text with nothing to read gives none."""
        keep = [i for i, t in enumerate(model_texts) if t.strip()]
        encodings = self.tokenizer.encode_batch([model_texts[i] for i in keep]) if keep else []
        for owner, enc in zip(keep, encodings):
            for piece in (enc, *enc.overflowing):
                if piece.ids:  # text that tokenizes to nothing (no post-processor) gives no window
                    yield owner, piece

    def batches(self, windows: Sequence[Window], batch_size: int,
                rng: np.random.Generator | None = None) -> Iterator[Batch]:
        """Length-bucketed batches: windows sorted by length, each batch padded to its longest.

        With `rng` (training), equal-length windows are mixed and the order of batches is
        shuffled; each batch still holds windows of similar length, so padding stays small.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = np.arange(len(windows))
        if rng is not None:
            rng.shuffle(order)
        lengths = np.fromiter((len(windows[i]) for i in order), dtype=np.int64, count=len(order))
        order = order[np.argsort(lengths, kind="stable")]
        starts = list(range(0, len(order), batch_size))
        if rng is not None:
            rng.shuffle(starts)
        for start in starts:
            yield self.pad([windows[i] for i in order[start:start + batch_size]])

    def pad(self, windows: Sequence[Window]) -> Batch:
        """One batch from windows, padded on the right with the tokenizer's pad id."""
        longest = max(len(w) for w in windows)
        input_ids = np.full((len(windows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(windows), longest), dtype=np.int64)
        for row, w in enumerate(windows):
            input_ids[row, :len(w)] = w.ids
            mask[row, :len(w)] = 1
        return Batch(input_ids, mask, np.array([w.owner for w in windows], dtype=np.int64))


def _pad_id(tokenizer: "Tokenizer") -> int:
    """The tokenizer's configured pad id, else the id of a conventional pad token, else 0.

    Padded positions are masked out (attention_mask 0), so the id only has to be a valid one."""
    if tokenizer.padding:
        return int(tokenizer.padding["pad_id"])
    for token in _PAD_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0


def report_offsets(read: ReadText, offsets: Sequence[tuple[int, int]],
                   special_tokens_mask: Sequence[int] | None = None) -> np.ndarray:
    """int64 `[tokens, 2]`: token offsets into `read.text` (a `tokenizers` Encoding's `offsets`)
    mapped to offsets into the report `read` was made from (`ReadText.to_report`).

    Special tokens (mask 1) and tokens with an empty span get `[-1, -1]`. A token cannot cross two
    sections (they are joined by a blank line, which tokenizers split at), but if one did it gets
    the start of its first part and the end of its last."""
    out = np.full((len(offsets), 2), -1, dtype=np.int64)
    for k, (start, end) in enumerate(offsets):
        if special_tokens_mask is not None and special_tokens_mask[k]:
            continue
        spans = read.to_report(int(start), int(end))
        if spans:
            out[k] = spans[0][0], spans[-1][1]
    return out


def not_mentioned() -> np.ndarray:
    """Class probabilities `[14, 4]` of a report that mentions nothing: all mass on 'not mentioned'."""
    probs = np.zeros((N_FINDINGS, N_CLASSES), dtype=np.float32)
    probs[:, BLANK] = 1.0
    return probs


def combine(probs: np.ndarray) -> np.ndarray:
    """One report's class probabilities `[14, 4]` from those of its windows `[windows, 14, 4]`.

    Rule: for each finding, take the whole distribution of the window that most confidently
    mentions it, i.e. the window with the largest 1 - p(not mentioned); ties go to the first window.

    Why: a window sees only part of the report, so "not mentioned" in one window says nothing
    about the rest. Averaging would dilute a mention that only one window contains towards
    "not mentioned" (the more windows, the worse); taking the most confident mention keeps it,
    and where overlapping windows both see the phrase they agree and the surer one wins. A report
    whose windows mention a finding nowhere stays "not mentioned". With one window this is the identity.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[1:] != (N_FINDINGS, N_CLASSES):
        raise ValueError(f"expected window probabilities [windows, {N_FINDINGS}, {N_CLASSES}], got {probs.shape}")
    if probs.shape[0] == 0:
        return not_mentioned()
    best = np.argmax(1.0 - probs[:, :, BLANK], axis=0)  # [14]: the window chosen per finding
    return probs[best, np.arange(N_FINDINGS)]


def combine_reports(probs: np.ndarray, owners: Iterable[int], n_reports: int) -> np.ndarray:
    """`[n_reports, 14, 4]` from window probabilities `[windows, 14, 4]` and each window's owner,
    by `combine`; a report without windows is "not mentioned" everywhere."""
    probs = np.asarray(probs, dtype=np.float32)
    owners = np.fromiter(owners, dtype=np.int64)
    if len(owners) != len(probs):
        raise ValueError(f"{len(probs)} window results but {len(owners)} owners")
    out = np.broadcast_to(not_mentioned(), (n_reports, N_FINDINGS, N_CLASSES)).copy()
    order = np.argsort(owners, kind="stable")  # group each report's windows, keeping reading order
    groups, starts = np.unique(owners[order], return_index=True)
    for owner, rows in zip(groups, np.split(order, starts[1:])):
        out[owner] = combine(probs[rows])
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from logits over the last axis (numerically stable)."""
    z = np.asarray(logits, dtype=np.float32)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
