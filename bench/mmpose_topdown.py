"""MMPose's side of ``bench/bench_vs_mmpose.py``; runs in the MMPose virtual environment (tests/mmpose_golden/README.md).

    /work/mmpose-venv/bin/python bench/mmpose_topdown.py make-checkpoint --config CONFIG --out ckpt.pth
    /work/mmpose-venv/bin/python bench/mmpose_topdown.py infer --config CONFIG --checkpoint ckpt.pth \\
        --jobs jobs.json --out mmpose.npz [--rounds 3] [--threads 2]

``make-checkpoint`` builds the model from MMPose's own config (``mmpose.apis.init_model`` without weights), fills every
parameter and buffer with the recipe of ``tests/mmpose_golden/recipe.py`` (no trained checkpoint can be downloaded
here) and saves it in MMPose's layout (``{"state_dict": ..., "meta": ...}``). ``infer`` times MMPose 1.3.2's
``inference_topdown(model, image_path, bboxes)`` (the config's test pipeline: ``GetBBoxCenterScale``,
``TopdownAffine``, the model's ``test_step`` with the config's flip test) per image, after one warm-up pass, and
saves the keypoints of the last round. Import shims as in ``tests/mmpose_golden/make_golden.py`` (nothing patched on
disk); ``mmpose.apis.inference`` is loaded by file so that ``mmpose.apis``' inferencers (which import torchvision, not
installed there) stay out.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "tests" / "mmpose_golden"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _mmpose_inference():
    golden = _load("make_golden", GOLDEN / "make_golden.py")
    golden.install_import_shims()
    # mmengine's revert_sync_batchnorm asks pkgutil for mmcv._ext's loader: a spec without one reads "no mmcv-full"
    sys.modules["mmcv._ext"].__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    import mmpose
    import mmpose.codecs  # noqa: F401  (registers codecs)
    import mmpose.datasets  # noqa: F401  (registers transforms)
    import mmpose.models  # noqa: F401  (registers models)

    inference = _load("mmpose_apis_inference", Path(mmpose.__file__).parent / "apis" / "inference.py")
    return golden, inference


def make_checkpoint(config: str, out: Path) -> None:
    import torch

    golden, inference = _mmpose_inference()
    model = inference.init_model(config, None, device="cpu")
    golden.fill(model, golden.load_recipe())
    meta = {"note": "recipe-filled weights (tests/mmpose_golden/recipe.py), not a trained checkpoint", "config": config}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, out)
    print(f"checkpoint: {out}")


def infer(config: str, checkpoint: str, jobs_file: Path, out: Path, rounds: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _, inference = _mmpose_inference()
    model = inference.init_model(config, checkpoint, device="cpu")
    jobs = json.loads(jobs_file.read_text())  # [{"image": path, "bboxes": [[x1, y1, x2, y2], ...]}, ...]
    persons = sum(len(j["bboxes"]) for j in jobs)

    def one_pass():
        kpts = []
        for job in jobs:
            samples = inference.inference_topdown(model, job["image"], np.asarray(job["bboxes"], np.float32), "xyxy")
            for s in samples:
                inst = s.pred_instances
                kpts.append(np.concatenate([inst.keypoints[0], inst.keypoint_scores[0][:, None]], axis=1))
        return np.stack(kpts).astype(np.float64)

    one_pass()  # warm-up
    seconds = []
    for _ in range(rounds):
        t = time.perf_counter()
        kpts = one_pass()
        seconds.append(time.perf_counter() - t)
    best = min(seconds)
    np.savez(out, keypoints=kpts, seconds=np.array(seconds), persons=persons)
    print(json.dumps({"persons": persons, "seconds": seconds, "persons_per_s": persons / best, "threads": threads}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-checkpoint")
    mk.add_argument("--config", required=True)
    mk.add_argument("--out", type=Path, required=True)
    inf = sub.add_parser("infer")
    inf.add_argument("--config", required=True)
    inf.add_argument("--checkpoint", required=True)
    inf.add_argument("--jobs", type=Path, required=True)
    inf.add_argument("--out", type=Path, required=True)
    inf.add_argument("--rounds", type=int, default=3)
    inf.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.cmd == "make-checkpoint":
        make_checkpoint(args.config, args.out)
    else:
        infer(args.config, args.checkpoint, args.jobs, args.out, args.rounds, args.threads)


if __name__ == "__main__":
    main()
