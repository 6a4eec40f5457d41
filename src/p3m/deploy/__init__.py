"""Deployment: ONNX export of P3M-Net and the browser demo (Gradio).

The onnxruntime session that runs an exported graph like the PyTorch network is
:class:`p3m.inference.onnx_session.OnnxP3MNet`: running networks is the inference layer's job.
"""
