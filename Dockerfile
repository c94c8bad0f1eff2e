# Targets (build one with --target NAME; docker/compose.yaml wires them; README "Docker"):
#   serve:           GPU serving image: onnxruntime-gpu (+ TensorRT 10, cuda-python, onnx and onnx-graphsurgeon with
#                    --build-arg WITH_TENSORRT=1: `pose-export engine` and `pose-export lint` run here, torch-free,
#                    and `pose-serve --runtime tensorrt` builds missing engines at start-up), OpenCV, FastAPI, the
#                    video extra (PyAV: /pose/video, /pose/stream, pose-predict); no torch.
#   serve-cpu:       the same service on onnxruntime's CPU provider, for machines without a GPU.
#   eval:            the GPU serving image (video extra included) plus the evaluation extra, for one-shot
#                    `pose-eval` jobs (no server).
#   export:          CPU image with torch that downloads checkpoints and exports ONNX + cards into /models.
# Every image installs from its constraints file (docker/constraints/<image>.txt: every package pinned; the CUDA
# stack is one consistent set, see docker/constraints/compile.py), runs as the non-root user "pose" (uid 10001)
# that owns /models, and the GPU images fail their build when onnxruntime-gpu's CUDA build does not match the
# base image's CUDA or a CUDA / cuDNN / TensorRT library it needs is missing (python -m inference.cuda_stack).

# NVIDIA's CUDA 12.6.3 + cuDNN 9 runtime image (Ubuntu 24.04, Python 3.12); the CPU images use the same Ubuntu
# release, so one set of pins serves all of them.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ARG CPU_IMAGE=ubuntu:24.04

# The sources, in a stage of their own: the export and CPU targets copy them without building the CUDA image.
FROM scratch AS source
COPY pyproject.toml README.md /app/
COPY core /app/core
COPY models /app/models
COPY inference /app/inference
COPY service /app/service
COPY export /app/export
COPY evaluation /app/evaluation
COPY docker/constraints /app/docker/constraints
COPY docker/setup-base.sh /app/docker/setup-base.sh

FROM ${CPU_IMAGE} AS cpu-base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=source /app /app
RUN sh /app/docker/setup-base.sh
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

FROM cpu-base AS serve-cpu
RUN pip install -c docker/constraints/serve-cpu.txt ".[serve,video]"
ENV POSE_HOST=0.0.0.0 POSE_PORT=8000 POSE_CACHE_DIR=/models POSE_PROVIDERS='["CPUExecutionProvider"]'
USER pose
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${POSE_PORT}/readyz" || exit 1
CMD ["pose-serve"]

FROM cpu-base AS export
ENV POSE_CACHE_DIR=/models YOLO_OFFLINE=0
# torch and torchvision: the CPU builds (a PyPI torchvision is a CUDA build that cannot load with CPU torch);
# Ultralytics without its dependencies (it would pull opencv-python, which clashes with opencv-python-headless)
RUN pip install -c docker/constraints/export.txt --index-url https://download.pytorch.org/whl/cpu torch torchvision \
 && pip install -c docker/constraints/export.txt ".[export,serve]" \
 && pip install -c docker/constraints/export.txt --no-deps ultralytics
USER pose
VOLUME ["/models"]
ENTRYPOINT ["pose-export"]
CMD ["defaults"]

FROM ${CUDA_IMAGE} AS gpu-base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=source /app /app
RUN sh /app/docker/setup-base.sh
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

FROM gpu-base AS serve
ARG WITH_TENSORRT=0
# TensorRT's libraries come from NVIDIA's package index (PyPI holds only a stub that downloads from it)
RUN pip install -c docker/constraints/serve-gpu.txt ".[serve-gpu,video]" \
 && if [ "$WITH_TENSORRT" = "1" ]; then \
      pip install -c docker/constraints/serve-gpu.txt --extra-index-url https://pypi.nvidia.com ".[tensorrt]"; \
    fi
# onnxruntime's TensorRT EP loads libnvinfer.so.10 by name: the pip TensorRT libraries must be on the loader's path
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.12/site-packages/tensorrt_libs:${LD_LIBRARY_PATH}
# fail the build, not the first start on a GPU, when the CUDA stack is not one consistent set
RUN python -m inference.cuda_stack --cuda "${CUDA_VERSION}" $([ "$WITH_TENSORRT" = "1" ] && echo --tensorrt)
ENV POSE_HOST=0.0.0.0 POSE_PORT=8000 POSE_CACHE_DIR=/models \
    POSE_PROVIDERS='["CUDAExecutionProvider","CPUExecutionProvider"]'
USER pose
VOLUME ["/models"]
EXPOSE 8000
# start period 30 min: a first start builds TensorRT engines (POSE_RUNTIME=tensorrt: `pose-export engine --served`
# before the port is bound; the onnxruntime TensorRT EP: while loading, /readyz 503) for minutes; failed probes in it
# do not count, and the first passing probe ends it, so later starts (engines cached) are healthy at once
HEALTHCHECK --interval=10s --timeout=5s --start-period=1800s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${POSE_PORT}/readyz" || exit 1
CMD ["pose-serve"]

FROM serve AS eval
USER root
RUN pip install -c docker/constraints/eval.txt ".[eval]"
USER pose
# a one-shot job: no server to probe
HEALTHCHECK NONE
ENTRYPOINT ["pose-eval"]
