"""The serving runtime: image decode, detector, card-driven pose estimator, batcher, FastAPI app.

Never imports torch: the serving image carries onnxruntime / TensorRT, OpenCV and FastAPI only
(``tests/test_service_no_torch.py`` checks it).
"""
