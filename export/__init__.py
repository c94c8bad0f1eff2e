"""Convert models for serving: pose ``.pth`` -> ONNX + model card, ONNX -> TensorRT engine,
Ultralytics YOLO ``.pt`` -> ONNX, optional Triton model repository, default models, int8 quantisation.

Stands on ``core`` (settings, the cache layout of ``core/cache.py``: engines named by
``CacheLayout.engine_path``, default models at ``Settings.cache.default_*``), ``models`` and ``inference`` (the
runtimes that verify an export); quantisation's AP gate uses ``evaluation``'s library modules. Never imports
``service`` (``pose-serve`` runs ``pose-export`` as a subprocess).
"""
