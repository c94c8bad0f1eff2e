"""Training (torch): COCO top-down data, MMPose's augmentation and losses, the loop (``pose-train``), configs.

Never imported by ``service/``. Reuses ``models/`` (networks, codecs, geometry, schema, checkpoints, zoo) and
``evaluation/`` (the COCO metric); see ``training/train.py`` for the command.
"""
