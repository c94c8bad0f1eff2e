"""Training configs: one per zoo entry (MMPose 1.3.2's recipe), plus ``quick`` / ``quick-rle`` for local runs.

Each config is MMPose's ``configs/body_2d_keypoint/.../*-210e_{coco,mpii}-*.py`` written out. The seed zoo:

=====================  ==================================  ===================================  ==================
config                 model (``models.zoo``)              loss (weight 1 each)                 initialisation
=====================  ==================================  ===================================  ==================
``ipr_res50``          integral, beta 1, 256x256           SmoothL1 + KeypointMSE (softmax hm)  ``td-hm_res50``
``ipr_res50_dsnt``     integral, beta 1, 256x256           SmoothL1 + JSDiscret                 ``td-hm_res50``
``ipr_res50_debias``   integral, beta 10 + debias          SmoothL1 + JSDiscret                 ``td-hm_res50``
``td-hm_res50``        heatmap, 192x256                    KeypointMSE                          ImageNet ResNet-50
``quick``              integral + debias, ResNet-18 128px  SmoothL1 + JSDiscret                 none (scratch)
=====================  ==================================  ===================================  ==================

Shared schedule: Adam, lr 5e-4 for a total batch of 512 (8 GPUs x 64) scaled linearly with the actual total
batch (MMPose ``auto_scale_lr=dict(base_batch_size=512)``), linear warm-up over 500 iterations from 0.001x,
MultiStepLR at epochs 170 and 200 (gamma 0.1), 210 epochs, validation (COCO AP, flip test) every 10 epochs,
best checkpoint by AP. MMPose's integral configs initialise from
``pretrain_models/td-hm_res50_8xb64-210e_coco-256x192.pth``; here the zoo's hash-verified ``td-hm_res50``
checkpoint (the published SimpleBaseline ResNet-50) plays that part, or a ``td-hm_res50`` run of ours.

The regression zoo and the deeper SimpleBaselines (:func:`deeppose`, :func:`rle`, :func:`simplebaseline`):

==================================  =============================================  ==========  =====================
configs                             loss                                           lr / batch  initialisation
==================================  =============================================  ==========  =====================
``td-reg_res{50,101,152}[_mpii]``   SmoothL1 on the coordinates (DeepPose)         5e-4 / 64   ImageNet ResNet
``td-reg_res50_rle``                RLELoss (RealNVP, residual, Laplace Q)         1e-3 / 64   ImageNet ResNet-50
``td-reg_res50_rle-pretrained``     RLELoss                                        1e-3 / 64   backbone of td-hm_res50
``td-reg_res{101,152}_rle``,        RLELoss                                        5e-4 / 64   ImageNet ResNet
``..._rle_coco-384x288``, ``_mpii``
``td-hm_res{101,152}...``           KeypointMSE (sigma 3 at 384x288)               5e-4 / 64   ImageNet ResNet
                                    (8xb32 configs: batch 32, base 256 or 512)
==================================  =============================================  ==========  =====================

All use a base batch of 512 (but ``td-hm_res101_coco-384x288`` and ``td-hm_res152_mpii``: 256), Adam, the warm-up and
210-epoch schedule above. MPII configs train on MPII's annotation files (``training.data.MpiiTopDown``) with
``RandomFlip`` and ``RandomBBoxTransform(shift_prob=0)`` but no ``RandomHalfBody`` (``training.transforms.MPII_AUGMENT``)
and validate PCKh (``best.pth`` by MMPose's ``save_best='PCK'``). ``td-reg_res50_rle-pretrained`` initialises only the
backbone (MMPose ``init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...td-hm_res50...)``); the zoo's
hash-verified ``td-hm_res50`` checkpoint plays MMPose's ``pretrain_models/td-hm_res50_8xb64-210e_coco-256x192.pth``.

HRNet (:func:`hrnet`, ``topdown_heatmap/coco/td-hm_hrnet-w{32,48}_8xb{64,32}-210e_coco-*``): KeypointMSE (sigma 2, or 3
at 384x288), lr 5e-4 at base batch 512, batch 64 (W32) or 32 (W48), the shared schedule and COCO augmentation; the
backbone starts from MMPose's ImageNet HRNet of its width (``pretrain_models/hrnet_w{32,48}-*.pth``,
``models.zoo.families.hrnet.IMAGENET_HRNET``; ``init`` ``"imagenet"``). HRNet+DARK / HRNet+UDP
(``td-hm_hrnet-w{32,48}_{dark,udp}``): the same recipe, targets and crops of the entry's codec.

The stacked hourglass and CPM (:func:`multistage_heatmap`): KeypointMSE on every stage's heatmaps, summed
(``keypoint_mse_stages``, MMPose ``CPMHead.loss``), the shared schedule, batch 32 (CPM 256x192: 64) of base 512,
random initialisation (their configs name no pretrained weights).

MSPN / RSN (:func:`mspn`): every stage and unit against the Megvii target of its level (``mspn_levels``, MMPose
``MSPNHead.loss``: KeypointMSE x 0.25 and OHKM-MSE on each stage's last unit), Adam lr 5e-3 (RSN-18: 2e-2 and a
third milestone at 190) at base
batch 256, batch 32; MSPN's stem and downsample paths from torchvision's ImageNet ResNet-50 (MMPose
``MSPN.init_weights``), RSN random.

``quick`` exercises every code path (integral head with debias, both integral losses, augmentation, validation,
AMP, DDP) at a size a CPU trains in minutes; ``quick-rle`` does the same for the RLE head and loss (and
``bbox_rle`` validation). Their learning rate is not scaled (base batch = their batch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from models.heads import head_kind
from models.zoo import ZOO, PoseModelConfig, get_config
from training.losses import LOSS_INPUTS, LOSSES
from training.transforms import MPII_AUGMENT, AugmentConfig

#: ``init`` values besides a zoo name / checkpoint path.
INIT_IMAGENET = "imagenet"
#: Head outputs (``training.losses.LOSS_INPUTS``) in validation messages.
_OUTPUT_WORDS = {"coords": "coordinates", "heatmaps": "heatmaps", "sigma": "sigmas"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides data paths and the command line.

    Attributes:
        name: config name (also the trained model's name in its checkpoint and model card).
        model: the network (``models.zoo.PoseModelConfig``; its ``name`` is set to :attr:`name`).
        losses: loss terms summed with weight 1 (names in :data:`training.losses.LOSSES`).
        epochs: training epochs (210).
        batch_size: images per GPU / process (64).
        base_batch_size: total batch at which ``lr`` holds; the run's lr is ``lr * total batch / base_batch_size``.
        lr: Adam learning rate at ``base_batch_size`` (5e-4).
        warmup_iters, warmup_factor: linear warm-up (500 iterations from 0.001x).
        milestones, gamma: MultiStepLR epochs (170, 200) and factor (0.1).
        val_interval: validate every N epochs (10); the last epoch is always validated.
        val_oks_nms: OKS-NMS in COCO validation (MMPose ``CocoMetric`` ``nms_mode='oks_nms'``, the default); False
            for MMPose's ``nms_mode='none'`` (the MSPN / RSN configs).
        checkpoint_interval: also keep ``epoch_<N>.pth`` every N epochs (10).
        augment: the train pipeline's random transforms (:class:`training.transforms.AugmentConfig`).
        init: ``"td-hm_res50"`` (zoo name or a path: a heatmap checkpoint loaded into the model with MMPose's key
            renaming), :data:`INIT_IMAGENET` (the ImageNet backbone: torchvision's ResNet, MMPose's HRNet; MSPN's ResNet-50
            parts) or None (random init).
        init_backbone_only: load only the ``backbone.*`` weights of ``init`` (MMPose ``Pretrained`` with
            ``prefix='backbone.'``).
        workers: DataLoader workers per process (2, as MMPose).
        log_interval: iterations between log records (50, as MMPose).
    """

    name: str
    model: PoseModelConfig
    losses: tuple[str, ...]
    epochs: int = 210
    batch_size: int = 64
    base_batch_size: int = 512
    lr: float = 5e-4
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    milestones: tuple[int, ...] = (170, 200)
    gamma: float = 0.1
    val_interval: int = 10
    val_oks_nms: bool = True
    checkpoint_interval: int = 10
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init: str | None = None
    init_backbone_only: bool = False
    workers: int = 2
    log_interval: int = 50

    def __post_init__(self) -> None:
        unknown = [x for x in self.losses if x not in LOSSES]
        if not self.losses or unknown:
            raise ValueError(f"config {self.name!r}: losses must be a non-empty subset of {LOSSES}, got {self.losses}")
        kind = head_kind(self.model.head_kind)
        kind.check_config(self.model)
        for loss in self.losses:  # each loss takes outputs the head must give in training
            missing = LOSS_INPUTS[loss] - kind.train_outputs
            if missing:
                what = " and ".join(_OUTPUT_WORDS.get(m, m) for m in sorted(missing))
                raise ValueError(f"config {self.name!r}: {kind.name} heads have no {what} for {loss}")
        for loss in sorted(kind.required_losses - set(self.losses)):
            raise ValueError(f"config {self.name!r}: the {loss} loss goes with the {kind.name} head, which needs it")
        for k in ("epochs", "batch_size", "base_batch_size", "val_interval", "checkpoint_interval", "log_interval"):
            if getattr(self, k) < 1:
                raise ValueError(f"config {self.name!r}: {k} must be >= 1, got {getattr(self, k)}")
        if self.lr <= 0 or self.warmup_iters < 0 or not 0 < self.warmup_factor <= 1 or self.workers < 0:
            raise ValueError(f"config {self.name!r}: invalid lr / warm-up / workers")
        if self.model.name != self.name:
            object.__setattr__(self, "model", self.model.replace(name=self.name))

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (command-line overrides)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able summary (stored in checkpoints and the log)."""
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


def ipr_res50() -> TrainConfig:
    """``integral_regression/coco/ipr_res50_8xb64-210e_coco-256x256.py``: IPR (beta 1), SmoothL1 on the coordinates
    plus KeypointMSE between the softmax heatmap and the normalised Gaussian target."""
    return TrainConfig(
        name="ipr_res50",
        model=get_config("ipr_res50"),
        losses=("smooth_l1", "keypoint_mse"),
        init="td-hm_res50",
    )


def ipr_res50_dsnt() -> TrainConfig:
    """``integral_regression/coco/ipr_res50_dsnt-8xb64-210e_coco-256x256.py``: DSNT, SmoothL1 + JS divergence."""
    return TrainConfig(
        name="ipr_res50_dsnt",
        model=get_config("ipr_res50_dsnt"),
        losses=("smooth_l1", "js_discrete"),
        init="td-hm_res50",
    )


def ipr_res50_debias() -> TrainConfig:
    """``integral_regression/coco/ipr_res50_debias-8xb64-210e_coco-256x256.py``: Debias-IPR (beta 10, debias),
    SmoothL1 + JS divergence."""
    return TrainConfig(
        name="ipr_res50_debias",
        model=get_config("ipr_res50_debias"),
        losses=("smooth_l1", "js_discrete"),
        init="td-hm_res50",
    )


def td_hm_res50() -> TrainConfig:
    """``topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py``: SimpleBaseline, KeypointMSE on Gaussian
    heatmaps (sigma 2), backbone from torchvision's ImageNet ResNet-50."""
    return TrainConfig(
        name="td-hm_res50",
        model=get_config("td-hm_res50"),
        losses=("keypoint_mse",),
        init=INIT_IMAGENET,
    )


def _zoo_config(name: str, losses: tuple[str, ...], **kw) -> TrainConfig:
    """The zoo entry ``name`` with ``losses``, and the augmentation of its data set (MPII: ``MPII_AUGMENT``)."""
    model = get_config(name)
    augment = MPII_AUGMENT if model.dataset == "mpii" else AugmentConfig()
    return TrainConfig(name=name, model=model, losses=losses, augment=augment, **kw)


def deeppose(name: str) -> TrainConfig:
    """``topdown_regression/{coco,mpii}/td-reg_res{50,101,152}_8xb64-210e_*``: DeepPose, SmoothL1 on the normalised
    coordinates, backbone from torchvision's ImageNet ResNet of the config's depth."""
    return _zoo_config(name, ("smooth_l1",), init=INIT_IMAGENET)


def rle(name: str) -> TrainConfig:
    """``topdown_regression/{coco,mpii}/td-reg_res*_rle*-8xb64-210e_*``: RLE, ``RLELoss`` (the head's RealNVP flow,
    residual, Laplace Q) on the coordinates and sigmas; lr 1e-3 for the ResNet-50 COCO configs, 5e-4 otherwise;
    ImageNet backbone, or for ``-pretrained`` the backbone of ``td-hm_res50``."""
    model = get_config(name)
    pretrained = name == "td-reg_res50_rle-pretrained"
    return _zoo_config(
        name,
        ("rle",),
        lr=1e-3 if model.dataset == "coco" and model.backbone_depth == 50 else 5e-4,
        init="td-hm_res50" if pretrained else INIT_IMAGENET,
        init_backbone_only=pretrained,
    )


#: SimpleBaseline configs not trained 8 GPUs x 64 with base batch 512: (batch per GPU, ``auto_scale_lr`` base batch).
_BATCH = {
    "td-hm_res101_coco-384x288": (32, 256),
    "td-hm_res152": (32, 512),
    "td-hm_res152_coco-384x288": (32, 512),
    "td-hm_res152_mpii": (32, 256),
    **{f"td-hm_{b}101_coco-384x288": (32, 256) for b in ("resnetv1d", "resnext", "seresnet")},
    **{f"td-hm_{b}152": (32, 512) for b in ("resnetv1d", "resnext", "seresnet")},
    **{f"td-hm_{b}152_coco-384x288": (48, 384) for b in ("resnetv1d", "resnext", "seresnet")},
    "td-hm_resnest101_coco-384x288": (32, 256),
    "td-hm_resnest200_coco-384x288": (16, 128),
    "td-hm_resnest269": (32, 512),
    "td-hm_resnest269_coco-384x288": (16, 128),
    "td-hm_scnet50_coco-384x288": (32, 256),
    "td-hm_scnet101": (32, 512),
    "td-hm_scnet101_coco-384x288": (48, 512),
}


def simplebaseline(name: str) -> TrainConfig:
    """``topdown_heatmap/{coco,mpii}/td-hm_*-210e_*``: SimpleBaseline, KeypointMSE on Gaussian heatmaps (sigma 2, or
    3 at 384x288); batch 64 (base 512), or as ``_BATCH`` says (``8xb32`` / ``8xb48`` configs).

    Initialisation: ResNets from torchvision's ImageNet weights (MMPose's ``torchvision://resnet<depth>``); other
    backbones start from random weights: MMPose's ResNetV1d / ResNeXt / SEResNet configs start from OpenMMLab's
    ImageNet classifiers (``mmcls://resnet50_v1d``, ``mmcls://resnext50_32x4d``, ``mmcls://se-resnet50``, ...), which
    :mod:`models.checkpoints` cannot fetch or map yet; AlexNet and SEResNet-152 have no ``init_cfg`` in MMPose either.
    Likewise ResNeSt (MMPose: ``mmcls://resnest{50,101,200,269}``) and SCNet (MMPose: OpenMMLab's
    ``pretrain_models/scnet{50,101}-*.pth``) start from random weights here: neither classifier can be fetched or its
    keys mapped yet.
    """
    batch, base = _BATCH.get(name, (64, 512))
    init = INIT_IMAGENET if get_config(name).backbone == "resnet" else None
    return _zoo_config(name, ("keypoint_mse",), batch_size=batch, base_batch_size=base, init=init)


def darkpose(name: str) -> TrainConfig:
    """``topdown_heatmap/coco/td-hm_res{50,101,152}_dark-*``: SimpleBaseline with DARK's unbiased Gaussian targets
    (``codec="dark"``: ``models.codecs_dark_udp.DarkHeatmap``), KeypointMSE, ImageNet backbone; batch 64 (base 512),
    ResNet-152's ``8xb32``: 32 (base 256). HRNet+DARK (``td-hm_hrnet-w{32,48}_dark-*``): :func:`hrnet`'s recipe, the
    codec of the zoo entry."""
    if get_config(name).backbone == "hrnet":
        return hrnet(name)
    deep = get_config(name).backbone_depth == 152
    return _zoo_config(
        name,
        ("keypoint_mse",),
        batch_size=32 if deep else 64,
        base_batch_size=256 if deep else 512,
        init=INIT_IMAGENET,
    )


def hrnet(name: str) -> TrainConfig:
    """``topdown_heatmap/coco/td-hm_hrnet-w{32,48}_8xb{64,32}-210e_coco-*``: KeypointMSE on MSRA heatmaps (sigma 2, or
    3 at 384x288), backbone from MMPose's ImageNet HRNet of the config's width
    (``models.zoo.families.hrnet.IMAGENET_HRNET``); batch 64 (W32) or 32 (W48), base batch 512 for both. The DARK / UDP
    rows (``td-hm_hrnet-w{32,48}_{dark,udp}-*``) are the same recipe with their entry's codec: DARK's unbiased targets,
    UDP's targets on UDP crops (``training.data.make_codec``, ``PoseModelConfig.use_udp``)."""
    return _zoo_config(
        name,
        ("keypoint_mse",),
        batch_size=32 if "hrnet-w48" in name else 64,
        base_batch_size=512,
        init=INIT_IMAGENET,
    )


def litehrnet(name: str) -> TrainConfig:
    """``topdown_heatmap/coco/td-hm_litehrnet-{18,30}_8xb{64,32}-210e_coco-*``: Lite-HRNet, KeypointMSE on Gaussian
    heatmaps (sigma 2, or 3 at 384x288), trained from scratch (the configs load no pretrained weights: MMPose's
    LiteHRNet initialisation); batch 64 at 256x192, 32 at 384x288 (base 512); ``RandomBBoxTransform(rotate_factor=60,
    scale_factor=(0.75, 1.25))``."""
    model = get_config(name)
    return TrainConfig(
        name=name,
        model=model,
        losses=("keypoint_mse",),
        batch_size=64 if model.input_size == (192, 256) else 32,
        augment=AugmentConfig(rotate_factor=60.0, scale_factor=(0.75, 1.25)),
    )


#: Hourglass / CPM configs trained 8 GPUs x 64 (``8xb64``); the others are ``8xb32``. Base batch 512 for all.
_BATCH_64 = frozenset({"td-hm_cpm_coco-256x192"})


def multistage_heatmap(name: str) -> TrainConfig:
    """``topdown_heatmap/coco/td-hm_{hourglass52,cpm}_*-210e_coco-*``: KeypointMSE on every stage's heatmaps, summed
    (MMPose ``CPMHead.loss``; sigma 2, or 3 at the larger input), batch 32 (``8xb32``) or 64 (CPM 256x192), base 512;
    random initialisation (MMPose's ``HourglassNet`` / ``CPM`` init: the configs name no pretrained weights)."""
    return _zoo_config(name, ("keypoint_mse_stages",), batch_size=64 if name in _BATCH_64 else 32, init=None)


def mspn(name: str) -> TrainConfig:
    """``topdown_heatmap/coco/td-hm_{,2x,3x,4x}mspn50_*`` / ``td-hm_{,2x,3x}rsn{18,50}_8xb32-210e_coco-256x192``: every
    stage and unit trained against its Megvii target (``mspn_levels``: KeypointMSE x 0.25, OHKM-MSE on each stage's
    last unit; kernels 11 / 9 / 7 / 5, with 15 first for several stages), Adam lr 5e-3 (RSN-18: 2e-2, milestones 170,
    190, 200) at base batch 256, batch 32, the shared schedule and COCO augmentation; validation without OKS-NMS
    (``CocoMetric(nms_mode='none')``).

    Initialisation: MSPN from torchvision's ImageNet ResNet-50 (MMPose ``init_cfg`` ``torchvision://resnet50``: the
    stem and every stage's downsample path, ``models.checkpoints.remap.imagenet_to_mspn_keys``; ``init``
    ``"imagenet"``); RSN random (its configs name no pretrained weights).
    """
    rsn18 = name == "td-hm_rsn18"  # its own lr and a third milestone
    return _zoo_config(
        name,
        ("mspn_levels",),
        batch_size=32,
        base_batch_size=256,
        lr=2e-2 if rsn18 else 5e-3,
        milestones=(170, 190, 200) if rsn18 else (170, 200),
        init=INIT_IMAGENET if get_config(name).backbone == "mspn" else None,
        val_oks_nms=False,
    )


def default_recipe(name: str) -> TrainConfig:
    """A zoo entry of a collection without a recipe here: its head kind's default loss (``HeadKind.default_losses``,
    ``models.heads``), ImageNet backbone, the shared schedule."""
    return _zoo_config(name, head_kind(get_config(name).head_kind).default_losses, init=INIT_IMAGENET)


def quick() -> TrainConfig:
    """A small config for local runs and tests: ResNet-18, 128x128 input, three 64-channel deconvolutions
    (32x32 heatmap), Debias-IPR head and loss, 10 epochs of batch 16 at lr 1e-3 (not scaled), MMPose's
    augmentation, validation every 5 epochs, random initialisation."""
    model = get_config("ipr_res50_debias").replace(
        backbone_depth=18,
        input_size=(128, 128),
        deconv_out_channels=(64, 64, 64),
        deconv_kernel_sizes=(4, 4, 4),
        checkpoint_url=None,
        sha256_prefix=None,
        published={},
        mmpose_config=None,
    )
    return TrainConfig(
        name="quick",
        model=model,
        losses=("smooth_l1", "js_discrete"),
        epochs=10,
        batch_size=16,
        base_batch_size=16,
        lr=1e-3,
        warmup_iters=20,
        milestones=(8,),
        val_interval=5,
        checkpoint_interval=5,
        log_interval=10,
        init=None,
    )


def quick_rle() -> TrainConfig:
    """``quick`` with MMPose's RLE head and loss: ResNet-18, 96x128 input (the RLE configs' 3:4 aspect at half size),
    ``bbox_rle`` person scores in validation."""
    model = get_config("td-reg_res50_rle").replace(
        backbone_depth=18,
        input_size=(96, 128),
        checkpoint_url=None,
        sha256_prefix=None,
        published={},
        mmpose_config=None,
    )
    return quick().replace(name="quick-rle", model=model, losses=("rle",))


#: name -> config factory.
CONFIGS = {
    "ipr_res50": ipr_res50,
    "ipr_res50_dsnt": ipr_res50_dsnt,
    "ipr_res50_debias": ipr_res50_debias,
    "td-hm_res50": td_hm_res50,
    "quick": quick,
    "quick-rle": quick_rle,
}
#: MMPose's recipe of each model-zoo collection (``PoseModelConfig.collection``) without a hand-written config above.
RECIPES = {
    "DeepPose": deeppose,
    "RLE": rle,
    "SimpleBaseline2D": simplebaseline,
    "DarkPose": darkpose,
    "HRNet": hrnet,
    "UDP": hrnet,
    "LiteHRNet": litehrnet,
    "Hourglass": multistage_heatmap,
    "CPM": multistage_heatmap,
    "MSPN": mspn,
    "RSN": mspn,
}
for _name, _cfg in ZOO.items():
    # a head kind without default losses and without a recipe here has no training config
    if _name not in CONFIGS and (_cfg.collection in RECIPES or head_kind(_cfg.head_kind).default_losses):
        _recipe = RECIPES.get(_cfg.collection, default_recipe)
        CONFIGS[_name] = lambda _n=_name, _f=_recipe: _f(_n)


def get_train_config(name: str) -> TrainConfig:
    """The training config called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        return CONFIGS[name]()
    except KeyError:
        raise KeyError(f"unknown training config {name!r}; known: {sorted(CONFIGS)}") from None
