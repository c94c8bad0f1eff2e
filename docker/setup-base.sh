#!/bin/sh
# The common base of every image (NVIDIA's CUDA image or plain Ubuntu 24.04, both Python 3.12): a virtual
# environment at /opt/venv, curl for the health check, and the non-root user "pose" (uid 10001) that owns
# /models. A named volume mounted at /models starts with the image's ownership of that folder; a bind mount
# keeps the host's, so give it to uid 10001 (README "Docker").
set -eu
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv curl ca-certificates
rm -rf /var/lib/apt/lists/*
python3 -m venv /opt/venv
useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin pose
mkdir -p /models
chown pose:pose /models
