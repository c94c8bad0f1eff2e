"""What a pose model is: keypoint schema, top-down geometry, codecs (torch-free) and networks (torch).

The torch-free modules (``keypoints``, ``geometry``, ``card``, ``codecs``) are imported by the
service; the network modules import torch and are used by training and export only.
"""
