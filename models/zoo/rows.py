"""Building blocks of zoo entries: MMPose's download roots, the published-figure dicts and :func:`entry`, shared by
:mod:`models.zoo.entries` and the family modules of :mod:`models.zoo.families`. Torch-free."""

from __future__ import annotations

from models.zoo.config import PoseModelConfig

#: MMPose 1.x checkpoints.
MMPOSE_DL = "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint"
#: MMPose 0.x checkpoints that MMPose 1.3.2's metafiles still point to.
MMPOSE_V0 = "https://download.openmmlab.com/mmpose/top_down"
#: MMPose's config folder of the body keypoint models.
CONFIGS = "configs/body_2d_keypoint"


def coco(ap: float, ap50: float, ap75: float, ar: float, ar50: float) -> dict:
    """COCO val2017 figures of a metafile row (fractions)."""
    return {"AP": ap, "AP50": ap50, "AP75": ap75, "AR": ar, "AR50": ar50}


def mpii(mean: float, mean01: float) -> dict:
    """MPII val PCKh@0.5 (``Mean``) and PCKh@0.1 figures of a metafile row (fractions)."""
    return {"Mean": mean, "Mean@0.1": mean01}


def entry(
    name: str,
    head_kind: str,
    collection: str,
    arch: str,
    mmpose_config: str,
    url: str,
    published: dict,
    input_size: tuple[int, int],
    **kw,
) -> PoseModelConfig:
    """A zoo entry; the SHA-256 prefix is the 8 hex digits of the checkpoint's file name."""
    sha = url.rsplit("/", 1)[-1].rsplit("-", 1)[-1].split("_", 1)[0].split(".", 1)[0]
    return PoseModelConfig(
        name=name,
        head_kind=head_kind,
        input_size=input_size,
        checkpoint_url=url,
        sha256_prefix=sha,
        published=published,
        mmpose_config=mmpose_config,
        collection=collection,
        arch=arch,
        **kw,
    )
