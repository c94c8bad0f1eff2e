"""The engine, without HTTP and without torch: runtimes behind one interface (``runtime_base.Runtime``; onnxruntime
and the factory ``create_runtime`` in ``runtime``, OpenVINO ``runtime_ov``, TensorRT ``runtime_trt``; ``cuda_stack``:
the build-time CUDA stack check), image decode (``imageio``), video decode / encode with limits (``video``), the video
engine (``stream``: detection interval, scene cuts, pose NMS, tracking ``tracking``, One-Euro smoothing ``smoothing``), the
person detector (``person_detector``), the card-driven pose estimator (``pose_estimator``), the batcher
(``batcher``), the pipeline (``pipeline``), the deadline / cancellation token of a request (``context``), drawing
(``render``), the JSON encoding of answers (``encoding``), the model paths (``default_models``) and ``pose-predict``
(``predict``).

The server (``service``), evaluation and quantisation use it; it never imports them, torch, FastAPI or uvicorn
(``tests/service/test_layers_no_torch.py`` and the import-linter contracts in ``pyproject.toml`` check it).
"""
