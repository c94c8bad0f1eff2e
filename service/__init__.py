"""The FastAPI server: app wiring, routes, typed dependencies, middleware, admission control, request parsing,
response schemas, state, the uvicorn server, the launcher and ``pose-serve``.

The engine it serves is ``inference`` (HTTP-free); settings, cache layout and error types are ``core``'s. Never
imports torch: the serving image carries onnxruntime / TensorRT, OpenCV and FastAPI only
(``tests/service/test_layers_no_torch.py`` checks it). Nothing outside ``service`` imports it.
"""
