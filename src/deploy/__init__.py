"""Deployment: ONNX export of P3M-Net and an onnxruntime session that runs like the PyTorch network."""

from src.deploy.onnx_session import OnnxP3MNet

__all__ = ["OnnxP3MNet"]
