# syntax=docker/dockerfile:1
# Targets:
#   serve  (default): the GPU serving image — onnxruntime-gpu (+ TensorRT with --build-arg WITH_TENSORRT=1),
#                     OpenCV, FastAPI. No torch.
#   export:           CPU image with torch that downloads checkpoints and exports ONNX + cards into /models.
#   eval:             the serving image plus the evaluation extra (pycocotools, matplotlib) for one-shot COCO jobs.
# docker/compose.yaml wires them together; see README "Docker".

ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS serve-base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv curl \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models ./models
COPY service ./service
COPY export ./export
COPY evaluation ./evaluation

FROM serve-base AS serve
ARG WITH_TENSORRT=0
RUN pip install ".[serve-gpu]" \
 && if [ "$WITH_TENSORRT" = "1" ]; then pip install "tensorrt-cu12>=10,<11" "cuda-python>=12"; fi
ENV POSE_HOST=0.0.0.0 POSE_PORT=8000 POSE_CACHE_DIR=/models \
    POSE_PROVIDERS='["CUDAExecutionProvider","CPUExecutionProvider"]'
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
CMD ["pose-serve"]

FROM serve AS eval
RUN pip install ".[eval]"
ENTRYPOINT ["pose-eval"]

FROM python:3.11-slim AS export
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POSE_CACHE_DIR=/models YOLO_OFFLINE=0
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=serve-base /app /app
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.13,<2.14" \
 && pip install ".[export,serve]" \
 && pip install --no-deps "ultralytics==8.4.190" "torchvision==0.28.0"
VOLUME ["/models"]
ENTRYPOINT ["pose-export"]
CMD ["defaults"]
