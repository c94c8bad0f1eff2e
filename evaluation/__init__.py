"""Measure: the COCO keypoint metric as MMPose computes it (:mod:`evaluation.metric`, torch-free), MPII PCKh
(:mod:`evaluation.mpii`), the reduced-precision gate (:mod:`evaluation.precision`), the offline run of the pipeline
over an annotation file (:mod:`evaluation.runner`, a library) and the ``pose-eval`` command (:mod:`evaluation.job`).

Dependency direction: evaluation -> inference -> models -> core; never ``service`` or ``export``; nothing here imports
torch.
"""
