"""Named pose-model configs (a small model zoo) and verified checkpoint download.

Every entry mirrors one MMPose 1.3.2 config and its published checkpoint; ``pose-zoo list`` prints them grouped
by family and data set as MMPose's model-zoo tables do (:func:`zoo_table`). The families:

===================  ============================================================================  ==============
collection           entries (MMPose config folder ``configs/body_2d_keypoint/...``)               head
===================  ============================================================================  ==============
IPR, DSNT,           ``ipr_res50``, ``ipr_res50_dsnt``, ``ipr_res50_debias``                        integral
Debias-IPR           (``integral_regression/coco``, 256x256)
SimpleBaseline2D     ``td-hm_res{50,101,152}`` (256x192), ``td-hm_res{101,152}_coco-384x288``,      heatmap
                     ``td-hm_res{50,101,152}_mpii`` (256x256) (``topdown_heatmap/{coco,mpii}``)
DeepPose             ``td-reg_res{50,101,152}`` (256x192), ``td-reg_res{50,101,152}_mpii``           regression
                     (``topdown_regression/{coco,mpii}``)
RLE                  ``td-reg_res{50,101,152}_rle``, ``td-reg_res50_rle-pretrained`` (256x192),     rle
                     ``td-reg_res152_rle_coco-384x288``, ``td-reg_res50_rle_mpii``
===================  ============================================================================  ==============

Published figures are copied from the model-zoo metafiles shipped with MMPose 1.3.2
(``configs/body_2d_keypoint/*/{coco,mpii}/*.yml``): COCO val2017 keypoint AP / AP50 / AP75 / AR / AR50 with flip
test and the person detections of ``COCO_val2017_detections_AP_H_56_person.json``; MPII val PCKh@0.5 (``Mean``)
and PCKh@0.1 (``Mean@0.1``) with ground-truth boxes. Checkpoint URLs are the metafiles' ``Weights``; several are
MMPose 0.x files (``download.openmmlab.com/mmpose/top_down/...``) whose keys MMPose 1.x renames on load
(``keypoint_head.`` -> ``head.``; ``models.checkpoints.mmpose_v1_keys`` does the same). One exception:
``resnet_coco.yml`` gives the 384x288 SimpleBaseline ResNet-101 row the 256x192 checkpoint's URL
(``td-hm_res101_8xb64-210e_coco-256x192-065d3625``), so ``td-hm_res101_coco-384x288`` takes the 384x288 checkpoint
of MMPose 0.x's model zoo (``res101_coco_384x288-8c71bdc9_20200709.pth``) and that table's figures for it.

The 8 hex digits in each checkpoint's file name are the start of its SHA-256 (OpenMMLab's ``publish_model``
convention); ``models.checkpoints.load_pretrained`` verifies them when it downloads.

Modules: :mod:`models.zoo.config` (:class:`PoseModelConfig`), :mod:`models.zoo.entries` (:data:`ZOO`, the entries),
:mod:`models.zoo.tables` (the ``pose-zoo list`` tables); this package re-exports their public names and looks
entries up (:func:`get_config`). Torch-free (stdlib only), so the service and tools can read configs without
importing torch.
"""

from __future__ import annotations

from models.zoo.config import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, METRIC_COLUMNS, PoseModelConfig
from models.zoo.entries import IMAGENET_RESNET, RESNET_ZOO, ZOO
from models.zoo.tables import model_zoo_table, zoo_table

__all__ = [
    "IMAGENET_MEAN_RGB",
    "IMAGENET_RESNET",
    "IMAGENET_STD_RGB",
    "METRIC_COLUMNS",
    "ZOO",
    "PoseModelConfig",
    "RESNET_ZOO",
    "get_config",
    "model_zoo_table",
    "zoo_table",
]


def get_config(name: str) -> PoseModelConfig:
    """The zoo config called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown pose model {name!r}; known: {sorted(ZOO)}") from None
