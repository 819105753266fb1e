"""Training-side code (teachers, pseudo-labels, distillation, ONNX export); imports torch. Never at runtime."""
