"""Why the reduced path was not taken (never an input's error: full decoding then decides)."""
from __future__ import annotations


class ReducedUnavailable(Exception):
    """This frame cannot be decoded at reduced size (syntax, colour, codestream): decode it in full."""


class CodestreamMismatch(ReducedUnavailable):
    """The codestream's own header gives another image size than the DICOM header's Rows / Columns."""

    def __init__(self, rows: int, cols: int, header: tuple[int, int]) -> None:
        super().__init__(f"codestream is {cols} x {rows}, DICOM header says {header[1]} x {header[0]}")
        self.shape = (rows, cols)
