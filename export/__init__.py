"""Training-side code; imports torch, never imported at runtime.

`export/reports/` trains the report student (teachers, pseudo-labels, distillation, ONNX export, the
default recipe), `export/images/` the image ViT; what both use lives here once: `splits` (the
salted-hash hold-out and validation splits) and `common` (seeding, the commit recorded as provenance).
"""
