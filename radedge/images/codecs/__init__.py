"""Decoding DICOM frames at reduced resolution: the model looks at a few hundred pixels, a chest
radiograph has a few thousand a side, and most of a decoder's time goes into detail that resizing
then throws away.

One module per concern, as in pydicom's ``pixels/``: `reduced` picks a codec by transfer syntax
and turns what it returns into the stored values pydicom would give; `jpeg2000` (resolution
levels) and `jpeg` (DCT scaling) call Pillow, whose wheels bundle openjpeg and libjpeg-turbo;
`levels` says how far each may reduce, and `wavelet` what a lossy JPEG 2000 sample stands for.
Every other transfer syntax (RLE, JPEG-LS, lossless JPEG, uncompressed) and every frame the reduced
path refuses or fails on is decoded at full resolution by pydicom (`radedge.images.dicom`); a grey
one is then shrunk to block means before the LUTs (`blocks`).
"""
from .blocks import reduce_full
from .reduced import CodestreamMismatch, Frame, ReducedUnavailable, decode_reduced, set_decoder_threads

__all__ = ["CodestreamMismatch", "Frame", "ReducedUnavailable", "decode_reduced", "reduce_full", "set_decoder_threads"]
