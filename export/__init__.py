"""Convert models for serving: pose ``.pth`` -> ONNX + model card, ONNX -> TensorRT engine,
Ultralytics YOLO ``.pt`` -> ONNX, optional Triton model repository, default models.

Nothing in ``service/`` imports this package; both read the cache layout and settings of
``service/settings.py`` (the service finds engines by ``service/runtime_trt.py``'s file naming inside
``Settings.cache.engines``, and the default models at ``Settings.cache.default_*``).
"""
