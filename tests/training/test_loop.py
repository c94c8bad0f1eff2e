"""The training loop on real data (coco-tiny, CPU): overfitting to AP >= 0.5 then export and serving over HTTP,
exact resume, DDP with torchrun (gloo) against one process, the schedule, and command-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")
pytest.importorskip("pycocotools")

from models.checkpoints import load_pose_checkpoint, read_checkpoint  # noqa: E402
from models.heads.rle import KIND as RLE  # noqa: E402
from models.tolerance import TRAINING_REPLAY_ATOL, judge_export, max_abs_diff  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402
from training.loop import WarmupMultiStep  # noqa: E402
from training.train import main  # noqa: E402

#: Overfit run: steps and learning rate that reach AP >= 0.5 on the 12 coco-tiny people (measured: see README).
OVERFIT_STEPS = 80
OVERFIT_LR = "2e-3"


def tiny_args(coco_tiny, work, *extra: str, val: bool = False) -> list[str]:
    ann = str(coco_tiny / "test_coco.json")
    args = ["quick", "--train-ann", ann, "--train-images", str(coco_tiny), "--work-dir", str(work)]
    args += ["--val-ann", ann, "--val-images", str(coco_tiny)] if val else ["--no-val"]
    return args + ["--workers", "0", "--amp", "off", "--no-progress", "--threads", "1", *extra]


def params(path) -> dict:
    sd = read_checkpoint(path)["state_dict"]
    return {k: v for k, v in sd.items() if "running_" not in k and "num_batches" not in k}


def test_schedule_is_mmpose_warmup_then_multistep():
    s = WarmupMultiStep(iters_per_epoch=100, warmup_iters=500, warmup_factor=0.001, milestones=(170, 200), gamma=0.1)
    assert s(0) == pytest.approx(0.001)
    assert s(249) == pytest.approx(0.001 + 0.999 * 249 / 499)  # mmengine LinearLR: total_iters = end - begin - 1
    assert s(499) == s(500) == s(16999) == 1.0
    assert s(17000) == pytest.approx(0.1) and s(19999) == pytest.approx(0.1) and s(20000) == pytest.approx(0.01)


@pytest.mark.slow
def test_overfit_then_export_and_serve_same_keypoints(coco_tiny, yolo_onnx, tmp_path, capsys):
    """From scratch, no augmentation: AP >= 0.5 on the training people (ground-truth boxes, evaluation/'s
    metric); then `pose-serve --pose best.pth` exports the checkpoint (pose-export pose, in a subprocess) and serves
    the same keypoints as the torch model on the same crops (models.tolerance)."""
    work = tmp_path / "run"
    argv = tiny_args(coco_tiny, work, val=True)
    argv += ["--no-augment", "--batch-size", "12", "--epochs", str(OVERFIT_STEPS), "--val-interval", "40"]
    argv += ["--checkpoint-interval", str(OVERFIT_STEPS)]
    argv += ["--lr", OVERFIT_LR, "--no-scale-lr", "--milestones", "--threads", "0", "--no-flip-test"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["mode"] == "train"]
    vals = [r for r in records if r["mode"] == "val"]
    best = max(v["AP"] for v in vals)
    print(
        f"[overfit] loss {train[0]['loss']:.4f} -> {train[-1]['loss']:.4f} in {len(train)} steps; "
        f"AP by epoch {[(v['epoch'], round(v['AP'], 3)) for v in vals]}"
    )
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]
    assert best >= 0.5, f"overfit AP {best:.3f} < 0.5"

    model, meta = load_pose_checkpoint(work / "best.pth")
    assert meta["meta"]["config_name"] == "quick" and meta["meta"]["AP"] == pytest.approx(best)

    from core.settings import Settings
    from inference.default_models import resolve_pose_checkpoint
    from inference.imageio import decode_image
    from models.geometry import bbox_to_center_scale, crop_batch, keypoints_crop_to_image
    from service.launcher import ServerProcess

    cache = tmp_path / "cache"
    ann = json.loads((coco_tiny / "test_coco.json").read_text())
    by_image: dict[int, list] = {}
    for a in ann["annotations"]:
        if a.get("num_keypoints", 0) > 0:
            x, y, w, h = a["bbox"]
            by_image.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    files = {im["id"]: coco_tiny / im["file_name"] for im in ann["images"]}
    size = model.config.input_size
    env = {"POSE_CACHE_DIR": str(cache), "POSE_PREPARE_DEFAULTS": "false"}
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(work / "best.pth")], env=env) as srv:
        srv.wait_ready()
        import httpx

        worst = None
        for image_id, boxes in by_image.items():
            data = files[image_id].read_bytes()
            r = httpx.post(
                srv.url + "/pose",
                files={"file": ("x.jpg", data, "image/jpeg")},
                params={"boxes": json.dumps(boxes)},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            served = np.array([p["keypoints"] for p in r.json()["persons"]], dtype=np.float64)
            # the torch model on the crops the service cuts (its decode, its geometry), in crop pixels
            rgb = decode_image(data)
            centers, scales = bbox_to_center_scale(np.array(boxes, np.float32), size)
            kp = model.predict_keypoints(crop_batch(rgb, centers, scales, size), flip_test=False)
            assert max_abs_diff(keypoints_crop_to_image(kp[..., :2], centers, scales, size), served[..., :2]) < 1.0
            # served keypoints back to crop pixels (inverse of keypoints_crop_to_image) for the crop-pixel policy
            c, s = centers[:, None, :], scales[:, None, :]
            served_crop = np.concatenate([(served[..., :2] - c + 0.5 * s) * np.array(size) / s, served[..., 2:]], -1)
            verdict = judge_export(served_crop, kp)
            assert verdict.passed, verdict.describe()
            worst = verdict.max_abs_diff if worst is None else max(worst, verdict.max_abs_diff)
        print(f"[overfit] served vs torch: max {worst:.3g} crop px")
    # the export is cached by the checkpoint's SHA-256: a second start finds it without exporting
    from core.hashing import sha256_file
    from models.card import ModelCard

    card_path = resolve_pose_checkpoint(work / "best.pth", Settings(cache_dir=cache))
    assert card_path.parent == Settings(cache_dir=cache).cache.trained_pose(sha256_file(work / "best.pth"))
    assert ModelCard.load(card_path).source["sha256"] == sha256_file(work / "best.pth")


def test_resume_gives_the_same_weights_as_one_run(coco_tiny, tmp_path):
    """5 steps, stop (mid-epoch 2), resume to 3 epochs == 3 epochs (9 steps) in one go, with augmentation on."""
    common = ["--batch-size", "4", "--epochs", "3"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(tiny_args(coco_tiny, a, *common, "--max-iters", "5")) == 0
    state = read_checkpoint(a / "last.pth")["train_state"]
    assert (state["epoch"], state["iter_in_epoch"], state["global_iter"]) == (1, 2, 5)
    assert main(tiny_args(coco_tiny, a, *common, "--resume")) == 0
    assert main(tiny_args(coco_tiny, b, *common)) == 0
    ca, cb = read_checkpoint(a / "last.pth"), read_checkpoint(b / "last.pth")
    assert ca["train_state"]["global_iter"] == cb["train_state"]["global_iter"] == 9
    diffs = [max_abs_diff(ca["state_dict"][k], cb["state_dict"][k]) for k in cb["state_dict"]]
    print(f"[resume] max |resumed - one run| over {len(diffs)} tensors: {max(diffs):.3g}")
    assert max(diffs) <= TRAINING_REPLAY_ATOL
    exp_a = ca["optimizer"]["state"]
    for i, s in cb["optimizer"]["state"].items():
        assert max_abs_diff(exp_a[i]["exp_avg_sq"], s["exp_avg_sq"]) <= TRAINING_REPLAY_ATOL
    assert ca["param_schedulers"] == cb["param_schedulers"]
    init = load_pose_checkpoint(b / "last.pth")[0]
    assert init.config.name == "quick"


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_same_global_batch(coco_tiny, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU), batch 1 per process, vs one process with batch 1 and 2 accumulated
    batches: the same samples per optimizer step, so the same BatchNorm batches and gradients. BatchNorm running
    statistics differ by design (DDP keeps rank 0's, as MMPose without SyncBN), so parameters are compared."""
    steps = ["--batch-size", "1", "--epochs", "1", "--max-iters", "4", "--warmup-iters", "1", "--lr", "1e-3"]
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.train",
        *tiny_args(coco_tiny, ddp, *steps),
    ]
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 processes x batch 1" in r.stderr
    assert main(tiny_args(coco_tiny, one, *steps, "--accumulate", "2")) == 0
    pd, po = params(ddp / "last.pth"), params(one / "last.pth")
    dev = max(max_abs_diff(pd[k], po[k]) for k in po)
    moved = max(max_abs_diff(pd[k], v) for k, v in params_at_init(ddp).items())
    print(f"[ddp] max |2 processes - 1 process| = {dev:.3g} over the weights (they moved up to {moved:.3g})")
    assert dev <= TRAINING_REPLAY_ATOL and moved > 100 * TRAINING_REPLAY_ATOL
    files = sorted(p.name for p in ddp.iterdir())
    assert files == ["config.json", "last.pth", "log.jsonl"]  # rank 0 alone wrote
    start = [json.loads(x) for x in (ddp / "log.jsonl").read_text().splitlines() if '"start"' in x]
    assert len(start) == 1 and start[0]["world_size"] == 2 and start[0]["total_batch"] == 2


def params_at_init(work) -> dict:
    """The seeded random initialisation the run started from (same seed, same config)."""
    from models.pose_model import TopdownPoseModel
    from training.configs import get_train_config
    from training.train import seed_everything

    seed_everything(0)
    m = TopdownPoseModel(get_train_config("quick").model)
    return {k: v for k, v in m.state_dict().items() if "running_" not in k and "num_batches" not in k}


def test_cli_errors_are_one_line(coco_tiny, tmp_path, capsys):
    assert main(["quick", "--work-dir", str(tmp_path), "--no-val"]) == 2  # a usage error
    assert "give --data-root or --train-ann" in capsys.readouterr().err
    argv = tiny_args(coco_tiny, tmp_path / "w", "--resume", str(tmp_path / "none.pth"))
    assert main(argv) == 1
    assert "none.pth" in capsys.readouterr().err
    argv = tiny_args(coco_tiny, tmp_path / "w", "--init", "ipr_res50", "--offline", "--cache-dir", str(tmp_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "offline" in err and str(tmp_path / "checkpoints") in err
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert main(tiny_args(coco_tiny, tmp_path / "w", "--tensorboard", "--max-iters", "1")) == 1
        assert "--tensorboard needs the tensorboard package" in capsys.readouterr().err
    argv = tiny_args(coco_tiny, tmp_path / "w", "--init", "imagenet", "--offline", "--cache-dir", str(tmp_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "offline" in err and "resnet18-f37072fd.pth" in err


# ---------------------------------------------------------------- the regression zoo's and MPII's configs

NEW_CONFIGS = sorted(
    n for n in __import__("training.configs", fromlist=["CONFIGS"]).CONFIGS if n.startswith(("td-reg", "td-hm_res1"))
) + ["td-hm_res50_mpii"]


@pytest.fixture(scope="module")
def tiny_mpii(coco_tiny, tmp_path_factory):
    """An MPII-format file (json + head-box .mat) made from coco-tiny's people (tests/mpii_data.py)."""
    from tests.mpii_data import mpii_from_coco

    return mpii_from_coco(coco_tiny / "test_coco.json", tmp_path_factory.mktemp("mpii"))


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_config_smoke_trains_two_steps(name, coco_tiny, tiny_mpii):
    """Each config's data (COCO or MPII), augmentation, codec and loss through the training step, on a small model
    (ResNet-18, 8 channels): two Adam steps on coco-tiny's people move the weights and give a finite loss."""
    from torch.utils.data import DataLoader

    from training.configs import get_train_config
    from training.data import CocoTopDown, MpiiTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    model_cfg = cfg.model.replace(backbone_depth=18, backbone_base_channels=8, deconv_out_channels=(16, 16, 16))
    if cfg.model.dataset == "mpii":
        ann, mat, _ = tiny_mpii
        data = MpiiTopDown(ann, coco_tiny, model_cfg, train=True, augment=cfg.augment, headbox_file=mat)
    else:
        data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, model_cfg, train=True, augment=cfg.augment)
    torch.manual_seed(0)
    from models.pose_model import TopdownPoseModel

    model = TopdownPoseModel(model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(torch.utils.data.Subset(data, range(4)), batch_size=2)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupMultiStep(2, warmup_iters=1))
    records = []
    state = TrainState()
    train_one_epoch(
        TrainForward(model, cfg.losses),
        loader,
        opt,
        sched,
        torch.amp.GradScaler("cpu", enabled=False),
        state,
        torch.device("cpu"),
        log_interval=1,
        log=records.append,
    )
    assert state.global_iter == 2 and len(records) == 2
    assert all(np.isfinite(r["loss"]) for r in records) and set(cfg.losses) <= set(records[0])
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in moved) and any(k.startswith("head.") for k in moved)
    if "flow" in model.kind.loss_kwargs(model.head):  # RLELoss trains the flow of the head
        assert any(".flow_model." in k for k in moved)


@pytest.mark.slow
def test_quick_rle_trains_and_validates_with_mmposes_rle_scores(coco_tiny, tmp_path):
    """``pose-train quick-rle``: the RLE head and loss through the command line, validation AP (person score
    ``bbox_rle``), a checkpoint that holds the trained flow and loads back."""
    work = tmp_path / "rle"
    argv = ["quick-rle", "--train-ann", str(coco_tiny / "test_coco.json"), "--train-images", str(coco_tiny)]
    argv += ["--val-ann", str(coco_tiny / "test_coco.json"), "--val-images", str(coco_tiny), "--work-dir", str(work)]
    argv += ["--workers", "0", "--amp", "off", "--no-progress", "--threads", "1", "--batch-size", "6", "--epochs", "2"]
    argv += ["--val-interval", "2", "--no-augment"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["mode"] == "val"]
    assert len(vals) == 1 and 0.0 <= vals[0]["AP"] <= 1.0
    assert all(np.isfinite(r["rle"]) for r in records if r["mode"] == "train")
    model, meta = load_pose_checkpoint(work / "best.pth")
    assert meta["meta"]["AP"] == vals[0]["AP"] and model.kind is RLE
    init = __import__("models.flow", fromlist=["RLEFlow"]).RLEFlow()
    flow = model.head.loss_module
    assert not torch.equal(flow.flow_model.s[0][0].weight, init.flow_model.s[0][0].weight)


@pytest.mark.slow
def test_mpii_config_trains_and_validates_pckh(coco_tiny, tiny_mpii, tmp_path):
    """``pose-train td-reg_res50_rle_mpii`` on an MPII-format file (from coco-tiny): MPII data, MPII's augmentation,
    PCKh validation, ``best.pth`` by PCK."""
    ann, mat, n = tiny_mpii
    work = tmp_path / "mpii"
    argv = ["td-reg_res50_rle_mpii", "--train-ann", str(ann), "--train-images", str(coco_tiny), "--val-ann", str(ann)]
    argv += ["--val-images", str(coco_tiny), "--val-headboxes", str(mat), "--work-dir", str(work), "--init", "none"]
    from evaluation.mpii import read_mpii

    files = list(dict.fromkeys(m.file_name for m in read_mpii(ann)))[:2]
    n = sum(m.file_name in files for m in read_mpii(ann))  # the people of the first two images
    argv += ["--workers", "0", "--amp", "off", "--no-progress", "--threads", "0", "--epochs", "1", "--max-images", "2"]
    argv += ["--batch-size", str((n + 1) // 2)]  # one epoch of two steps, then validation
    assert main(argv) == 0
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    (val,) = [r for r in records if r["mode"] == "val"]
    assert {"PCK", "PCK@0.1", "Head PCK"} <= set(val) and 0 <= val["PCK@0.1"] <= val["PCK"] <= 100
    assert records[0]["instances"] == n
    meta = read_checkpoint(work / "best.pth")["meta"]
    assert meta["PCK"] == val["PCK"] and meta["config_name"] == "td-reg_res50_rle_mpii"
