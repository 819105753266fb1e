"""Report model training: teachers, pseudo-labels, distillation, ONNX export, the default recipe. Imports torch."""
