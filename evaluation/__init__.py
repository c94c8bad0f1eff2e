"""Measure: the COCO keypoint metric as MMPose computes it (:mod:`evaluation.metric`, torch-free) and the
offline ``pose-eval`` job that runs the served pipeline over a COCO annotation file (:mod:`evaluation.job`).

Dependency direction: evaluation -> service -> models; nothing here imports torch.
"""
