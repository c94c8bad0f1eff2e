"""Load MMPose ``.pth`` checkpoints and our own, save ours; strict key checking with clear errors.

Two layouts are read:

* MMPose / mmengine (``mmengine.runner.checkpoint.save_checkpoint``, published via
  ``tools/misc/publish_model.py``): a dict with ``state_dict`` (keys ``backbone.*`` / ``head.*``)
  and ``meta`` (mmengine / mmpose versions, dataset meta, ...). MMPose 0.x files (``keypoint_head.*``; RLE's
  ``keypoint_head.loss.*``), which MMPose 1.3.2's metafiles still publish, are renamed as MMPose 1.x renames them
  on load (:func:`mmpose_v1_keys`). The file does not say which
  inference config (beta, debias) it belongs to; :func:`load_pose_checkpoint` finds the zoo entry by
  the SHA-256 prefix in the file name or of the file content, or takes ``config=`` from the caller.
* Ours (:data:`FORMAT`): ``{"format": FORMAT, "config": PoseModelConfig.to_dict(),
  "state_dict": ..., "meta": {...}}`` as written by :func:`save_pose_checkpoint`.

Files are read with ``torch.load(weights_only=True)`` (no arbitrary pickles); the numpy types that
MMPose's ``meta`` may contain are allow-listed.

Modules: :mod:`~models.checkpoints.downloads` (verified downloads), :mod:`~models.checkpoints.checkpoint_files` (the format,
safe reading), :mod:`~models.checkpoints.remap` (MMPose 0.x and torchvision key maps),
:mod:`~models.checkpoints.load` (into our model), :mod:`~models.checkpoints.save`; this package re-exports their
public names.
"""

from __future__ import annotations

from models.checkpoints.checkpoint_files import (
    FORMAT,
    CheckpointError,
    OpaqueObject,
    extract_state_dict,
    read_checkpoint,
)
from models.checkpoints.downloads import (
    ChecksumError,
    download,
    imagenet_hrnet_weights,
    imagenet_weights,
    load_pretrained,
    verified_file,
)
from models.checkpoints.load import (
    check_state_dict,
    config_for_mmpose_file,
    load_backbone_weights,
    load_imagenet_backbone,
    load_pose_checkpoint,
    load_state_dict_strict,
)
from models.checkpoints.remap import (
    imagenet_hrnet_to_backbone_keys,
    imagenet_to_backbone_keys,
    imagenet_to_mspn_keys,
    mmpose_v1_keys,
)
from models.checkpoints.save import save_pose_checkpoint

__all__ = [
    "FORMAT",
    "CheckpointError",
    "ChecksumError",
    "OpaqueObject",
    "check_state_dict",
    "config_for_mmpose_file",
    "download",
    "extract_state_dict",
    "imagenet_hrnet_to_backbone_keys",
    "imagenet_to_mspn_keys",
    "imagenet_hrnet_weights",
    "imagenet_to_backbone_keys",
    "imagenet_weights",
    "load_backbone_weights",
    "load_imagenet_backbone",
    "load_pose_checkpoint",
    "load_pretrained",
    "load_state_dict_strict",
    "mmpose_v1_keys",
    "read_checkpoint",
    "save_pose_checkpoint",
    "verified_file",
]
