"""Convert models for serving: pose ``.pth`` -> ONNX + model card, ONNX -> TensorRT engine,
Ultralytics YOLO ``.pt`` -> ONNX, optional Triton model repository, default models.

Nothing in ``service/`` imports this package; the service finds engines through the cache layout
in ``service/runtime_trt.py`` and default models through ``service/defaults.py``.
"""
