"""Torch-free runtime: onnxruntime + numpy. Never imports torch, torchvision or training/."""
