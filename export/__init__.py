"""Export: a trained run -> self-contained ONNX / TorchScript graphs, a DRS calibration and a manifest."""
