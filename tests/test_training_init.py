"""Initialisation as MMPose: integral configs from a SimpleBaseline (td-hm) checkpoint with the head keys renamed,
SimpleBaseline from torchvision's ImageNet ResNet (keys mapped, ``fc`` dropped); configs and the AMP choice."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from models.checkpoints import imagenet_to_backbone_keys, load_imagenet_backbone, save_pose_checkpoint  # noqa: E402
from models.pose_model import TopdownPoseModel  # noqa: E402
from models.zoo import IMAGENET_RESNET, get_config  # noqa: E402
from service.settings import Settings  # noqa: E402
from training.configs import CONFIGS, get_train_config  # noqa: E402
from training.train import amp_dtype_for, initialise  # noqa: E402

SMALL = dict(backbone_depth=18, backbone_base_channels=8, deconv_out_channels=(8, 8), deconv_kernel_sizes=(4, 4))


def test_integral_model_starts_from_a_heatmap_checkpoint(tmp_path):
    torch.manual_seed(1)
    heat = TopdownPoseModel(get_config("td-hm_res50").replace(name="hm", **SMALL))
    path = save_pose_checkpoint(tmp_path / "td-hm.pth", heat, {"epoch": 210})
    integral = TopdownPoseModel(get_config("ipr_res50_debias").replace(**SMALL))
    grid = integral.head.linspace_x.detach().clone()
    how = initialise(integral, str(path), Settings(cache_dir=tmp_path))
    assert "renamed" in how
    assert torch.equal(integral.backbone.conv1.weight, heat.backbone.conv1.weight)
    assert torch.equal(integral.head.simplebaseline_head.final_layer.weight, heat.head.final_layer.weight)
    assert torch.equal(integral.head.linspace_x, grid)  # the integral grid is the model's own


def test_fine_tune_from_an_mmpose_layout_checkpoint(tmp_path):
    torch.manual_seed(2)
    src = TopdownPoseModel(get_config("ipr_res50").replace(**SMALL))
    path = tmp_path / "mmpose_style.pth"  # mmengine's layout: state_dict + meta, no config
    torch.save({"state_dict": src.state_dict(), "meta": {"mmpose_version": "1.3.2", "epoch": 210}}, path)
    dst = TopdownPoseModel(get_config("ipr_res50").replace(**SMALL))
    assert "mmpose checkpoint" in initialise(dst, str(path), Settings(cache_dir=tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_imagenet_keys_map_onto_the_backbone(tmp_path):
    model = TopdownPoseModel(get_config("td-hm_res50").replace(backbone_depth=18))
    tv = {
        k[len("backbone.") :]: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
        if k.startswith("backbone.")
    }
    tv["fc.weight"], tv["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    mapped = imagenet_to_backbone_keys(tv)
    assert "backbone.fc.weight" not in mapped and "backbone.layer4.1.bn2.running_var" in mapped
    model.load_state_dict({**model.state_dict(), **mapped}, strict=True)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, tv["layer1.0.conv1.weight"])


def test_imagenet_download_is_hash_checked_and_offline_names_the_url(tmp_path):
    model = TopdownPoseModel(get_config("td-hm_res50"))
    url, prefix = IMAGENET_RESNET[50]
    assert url.endswith(f"resnet50-{prefix}.pth")  # MMPose's torchvision://resnet50 (IMAGENET1K_V1)
    with pytest.raises(FileNotFoundError, match=prefix):
        load_imagenet_backbone(model, tmp_path, offline=True)
    (tmp_path / url.rsplit("/", 1)[-1]).write_bytes(b"not the weights")
    from models.checkpoints import ChecksumError

    with pytest.raises(ChecksumError, match=prefix):
        load_imagenet_backbone(model, tmp_path, offline=True)
    with pytest.raises(ValueError, match="base width 8"):
        load_imagenet_backbone(TopdownPoseModel(get_config("td-hm_res50").replace(**SMALL)), tmp_path)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_follow_mmpose(name):
    cfg = get_train_config(name)
    assert cfg.model.name == name
    if name == "quick":
        assert cfg.model.backbone_depth == 18 and cfg.model.input_size == (128, 128) and cfg.init is None
        return
    assert (cfg.epochs, cfg.batch_size, cfg.base_batch_size, cfg.lr) == (210, 64, 512, 5e-4)
    assert (cfg.warmup_iters, cfg.warmup_factor, cfg.milestones, cfg.gamma) == (500, 0.001, (170, 200), 0.1)
    assert cfg.model == get_config(name)  # the zoo entry, unchanged
    expected = {"ipr_res50": ("smooth_l1", "keypoint_mse"), "td-hm_res50": ("keypoint_mse",)}
    assert cfg.losses == expected.get(name, ("smooth_l1", "js_discrete"))
    assert cfg.init == ("imagenet" if name == "td-hm_res50" else "td-hm_res50")


def test_amp_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert amp_dtype_for("off", cpu) is None and amp_dtype_for("bf16", cpu) == torch.bfloat16
    assert amp_dtype_for("auto", cuda) == torch.float16 and amp_dtype_for("fp16", cuda) == torch.float16
    assert amp_dtype_for("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        amp_dtype_for("fp16", cpu)
