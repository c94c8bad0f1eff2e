"""poseserve for Python callers: the public API.

* :class:`PoseEstimator`: the in-process pipeline (detector + top-down pose model, the server's engine) in three
  lines::

      from poseserve import PoseEstimator
      estimator = PoseEstimator.from_pretrained()          # the default models, fetched and exported once
      people = estimator("person.jpg")                     # a path, BGR numpy (OpenCV's order), PIL image or bytes

* :class:`~poseserve.client.PoseClient` / :class:`~poseserve.client.AsyncPoseClient`: the same results from a
  running ``pose-serve`` over HTTP (``pip install 'poseserve[client]'``);
* :class:`Poses` / :class:`Person`: the typed results both return (:mod:`poseserve.results`).

Names are imported on first use, so ``import poseserve.client`` needs neither onnxruntime nor OpenCV.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from core.version import __version__

if TYPE_CHECKING:
    from poseserve.api import PoseEstimator, StreamSession
    from poseserve.client import AsyncPoseClient, PoseClient
    from poseserve.results import Person, Poses

__all__ = ["AsyncPoseClient", "Person", "PoseClient", "PoseEstimator", "Poses", "StreamSession", "__version__"]

_WHERE = {
    "PoseEstimator": "poseserve.api",
    "StreamSession": "poseserve.api",
    "PoseClient": "poseserve.client",
    "AsyncPoseClient": "poseserve.client",
    "Person": "poseserve.results",
    "Poses": "poseserve.results",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'poseserve' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
