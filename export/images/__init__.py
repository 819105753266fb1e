"""Image model training (Rep-GLS ViT): data, loss, model, training, ONNX export. Imports torch."""
