"""What a pose model is: keypoint schema, top-down geometry, codecs (torch-free) and networks (torch).

The torch-free modules (``keypoints``, ``geometry``, ``card``, ``codecs``, ``zoo``, ``tolerance``) are
imported by the service; the network modules (``resnet``, ``heads``, ``flow``, ``pose_model``, ``checkpoints``) import
torch and are used by training and export only. Nothing here reads settings or the environment: callers
pass paths (``core.settings.Settings``) in.
"""
