"""The reduced-precision gate's figures in this environment: what ``models/tolerance.py``'s bounds must sit above.

    python bench/precision_spread.py --out spread.json [--threads 1] [--assets DIR]

Runs the served pipeline (OpenVINO, YOLOv8n + MoveNet Thunder, detector boxes, the service's flip test setting) on
coco-mini at fp32, bf16, int8 (``pose-export quantize``'s recipe) and int8 with the whole MoveNet quantised (decode
included: the known accuracy loss the gate must catch), judges each against fp32 (``evaluation.precision``) and
writes every run's COCO results and every comparison to ``--out``. Run it under each CPU, thread count and library
version to measure the spread (bench/RESULTS.md, "Reduced-precision gate"); ``--against OTHER.json`` also compares
this environment's runs with another's, precision by precision (the environment-to-environment spread).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
#: ../shared/assets beside the repository
ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"


def _versions() -> dict:
    import cv2
    import numpy
    import openvino

    out = {"opencv": cv2.__version__, "openvino": openvino.__version__.split("-")[0], "numpy": numpy.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        import nncf

        out["nncf"] = nncf.__version__
    except ImportError:
        pass
    return out


def _cpu() -> str:
    try:
        info = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in Path("/proc/cpuinfo").read_text().splitlines())
            if k.strip() in ("model name", "cpu family")
        )
        return f"{info.get('model name', '?')}, family {info.get('cpu family', '?')}"
    except OSError:
        return platform.processor()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--assets", default=str(ASSETS), help=f"the shared test assets (default {ASSETS})")
    p.add_argument("--threads", type=int, default=None, help="OpenVINO inference threads (default: all cores)")
    p.add_argument("--cases", default="bf16,int8,int8-full", help="comma-separated: bf16, int8, int8-full")
    p.add_argument("--against", help="another run's --out file: compare run by run")
    args = p.parse_args(argv)

    from core.settings import Settings
    from evaluation.metric import load_coco
    from evaluation.precision import compare_runs
    from evaluation.precision_runs import compare_precision_runs, evaluate_precisions
    from export.quantize import quantize_models
    from models.card import InputSpec, ModelCard, OutputSpec

    assets = Path(args.assets)
    ann = assets / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
    images = assets / "coco-mini" / "val2017"
    tmp = Path(tempfile.mkdtemp(prefix="precision-spread-"))
    card = ModelCard(
        name="movenet_thunder",
        model_file=str(assets / "pose" / "movenet_thunder.onnx"),
        input=InputSpec(name="input:0", width=256, height=256, layout="NHWC", dtype="int32", color="RGB"),
        output=OutputSpec(name="Identity:0", kind="keypoints", coord_order="yx", coord_units="normalized"),
    ).save(tmp / "movenet_thunder.json")
    base = {"runtime": "openvino", "pose_model": card, "detector_model": assets / "detector" / "yolov8n.onnx"}
    if args.threads:
        base["intra_op_threads"] = args.threads
    coco = load_coco(ann)
    cases = [c for c in args.cases.split(",") if c]
    records: dict[str, list] = {}
    comparisons: dict[str, dict] = {}
    image_ids = None

    def keep(runs, gate, name):
        nonlocal image_ids
        image_ids = runs[0].predictions.image_ids
        if "fp32" in records and runs[0].records != records["fp32"]:
            print(f"note: the fp32 run beside {name} differs from the first fp32 run", flush=True)
        records.setdefault("fp32", runs[0].records)
        records[name] = runs[1].records
        comparisons[name] = gate.to_dict()
        print(gate.describe(), end="", flush=True)

    if "bf16" in cases:
        settings = Settings(**base, cache_dir=tmp / "cache")
        runs = evaluate_precisions(
            settings, coco, ann, images, ["fp32", "bf16"], box_source="detector", same_bboxes=True
        )
        keep(runs, compare_precision_runs(coco, runs)[0], "bf16")
    for name, depth in (("int8", None), ("int8-full", 0)):
        if name in cases:
            settings = Settings(**base, cache_dir=tmp / f"cache-{name}")
            report = quantize_models(settings, images, eval_ann=ann, eval_images=images, pose_tail_depth=depth)
            keep(report.runs, report.gate, name)
    across = {}
    if args.against:
        other = json.loads(Path(args.against).read_text())
        for name in records:
            if name in other["records"]:
                c = compare_runs(coco, other["records"][name], records[name], image_ids, precision=name, reference=name)
                across[name] = c.to_dict()
                print(f"against {args.against}: " + c.describe(), end="", flush=True)
    out = {
        "env": {"cpu": _cpu(), "threads": args.threads, **_versions()},
        "comparisons": comparisons,
        "across": across,
        "records": records,
    }
    Path(args.out).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
