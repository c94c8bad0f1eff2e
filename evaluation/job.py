"""``pose-eval``: the offline COCO keypoint (AP) or MPII (PCKh) evaluation of the served pipeline, with the model-zoo
table (the command line; the library it runs is :mod:`evaluation.runner` and :mod:`evaluation.report`).

    pose-eval --ann person_keypoints_val2017.json --images val2017/ --pose ipr_res50.json \\
        --boxes file --det-file COCO_val2017_detections_AP_H_56_person.json --out-dir eval_out/
    pose-eval --dataset mpii --ann mpii_val.json --headboxes mpii_gt_val.mat --images mpii/images/ \\
        --pose td-reg_res50_rle_mpii.json --flip-test

It runs what the service runs: images are decoded by ``inference.imageio.decode_image`` (EXIF-aware,
RGB), boxes go through ``inference.pipeline.PosePipeline`` (the service's crop, engine and decode; the
live detector is ``inference.person_detector.PersonDetector``), and the predictions are scored by
:mod:`evaluation.metric` (MMPose ``CocoMetric``: rescoring, OKS-NMS 0.9, COCOeval).

Boxes (``--boxes``):

* ``gt``: ground-truth boxes as MMPose's top-down COCO dataset takes them
  (``mmpose/datasets/datasets/base/base_coco_style_dataset.py``): crowd annotations, people without
  labelled keypoints and empty boxes are skipped, the xywh box is clipped to ``[0, W-1] x [0, H-1]``;
  bbox score 1.
* ``file``: a detection-results file in the ``COCO_val2017_detections_AP_H_56_person.json`` format (a JSON
  list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``); category 1 only, boxes kept with
  ``score >= --det-file-score-thr`` (default 0.0: MMPose's configs set no ``bbox_score_thr``); detections of
  images that are not in the annotation file are skipped and counted.
* ``detector``: the live YOLO person detector of the service (``--detector yolov8n.onnx``, with the
  service's ``--det-score-thr`` / ``--det-iou-thr`` settings).

Runtime and pipeline options are the service's settings (``core.settings.Settings``: the same flags
and ``POSE_*`` variables as ``pose-serve``).

Images are read one at a time (a small read-ahead thread decodes the next few), so val2017 never has to
fit in memory; only the keypoints are kept (17 x 3 floats per person).

Data set (``--dataset``, default ``auto``: the card's ``extra.evaluation.dataset``, else the data set of its keypoint
schema, else COCO): ``coco`` scores with :mod:`evaluation.metric` (person score ``--score-mode``, default the card's
``extra.evaluation.score_mode``: MMPose's ``bbox_rle`` for RLE's COCO configs, ``bbox_keypoint`` otherwise);
``mpii`` reads an MPII-format annotation file and its head boxes (:mod:`evaluation.mpii`: MMPose's ``MpiiDataset``),
runs the pipeline on the annotations' center / scale boxes and scores PCKh as MMPose's ``MpiiPCKAccuracy``; the table
has MMPose's MPII columns (``Arch | Input Size | Mean | Mean@0.1``).

Flip test: the service's flip test (``--flip-test``) merges the mirrored crop with MMPose's flip-back,
unless the model card says flip test is already in the graph (``flip_test_in_graph``, third-party
models), in which case it is always on and ``--flip-test`` changes nothing. The table notes which one ran.

Outputs (``--out-dir``), COCO: ``ap_table.md`` (the Markdown table, also printed), ``results.keypoints.json`` (COCO
results), ``metrics.json`` (all ten COCOeval stats, settings, per-keypoint figures) and ``per_keypoint.png``
(mean keypoint OKS and PCK per keypoint). MPII: ``pckh_table.md``, ``metrics.json`` (MMPose's PCKh figures in percent,
the table's columns, settings) and ``results.mpii.json`` (per annotation: its index, image and keypoints).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from core.cli_options import (
    add_settings_options,
    add_version_option,
    export_command,
    export_extra_installed,
    settings_from_args,
)
from core.errors import UsageError
from core.precision import SETTINGS_PRECISIONS
from core.settings import (
    CACHE_FIELDS,
    DETECTOR_FIELDS,
    MODEL_FIELDS,
    PIPELINE_FIELDS,
    RUNTIME_FIELDS,
    Settings,
)
from evaluation.boxes import load_detection_file
from evaluation.metric import DEFAULT_KPT_SCORE_THR, DEFAULT_NMS_THR, write_results_json
from evaluation.mpii import read_mpii, zoo_columns
from evaluation.precision_runs import compare_precision_runs, evaluate_precisions
from evaluation.report import format_ap_table, format_precision_table, plot_per_keypoint
from evaluation.runner import BOX_SOURCES, card_evaluation, run_pipeline_mpii, score_mpii
from inference.pipeline import PosePipeline
from models.card import ModelCard, ModelCardError, card_path_for
from models.scoring import SCORE_MODES
from models.zoo import METRIC_COLUMNS

DATASETS = ("auto", "coco", "mpii")
TABLE_COLUMNS = ("Arch", "Input Size", *METRIC_COLUMNS["coco"])


# --------------------------------------------------------------------------------------------------
# Model loading (card, or zoo name / checkpoint through ``pose-export pose`` in a subprocess)
# --------------------------------------------------------------------------------------------------


def card_from_checkpoint(zoo: str | None, checkpoint: str | None, out_dir: Path, settings: Settings) -> Path:
    """Turn a zoo name or a ``.pth`` into an ONNX + card with ``pose-export pose``; returns the card path.

    Runs ``python -m export.cli pose ZOO_OR_CHECKPOINT --out OUT_DIR [--config ZOO] --cache-dir ... --lint off`` in a
    subprocess (``core.cli_options.export_command``), so evaluation never imports the export package (or torch): the
    export is verified against torch there; with both given, ``zoo`` names the config of an MMPose ``.pth``; zoo
    checkpoints go to ``settings.cache.checkpoints``. Needs the export extra (``pip install poseserve[export]``).

    Raises:
        RuntimeError: the export extra is not installed (export first and pass ``--pose``), or the export failed
            (the checkpoint cannot be loaded or exported; its messages went to stderr).
    """
    if not export_extra_installed():
        raise RuntimeError(
            "evaluating a zoo name or a .pth needs the export package (pose-export pose: torch, onnx), which is not "
            "installed here; export the model to ONNX + card first and pass --pose CARD.json"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    model = checkpoint if checkpoint is not None else zoo
    sub = ["pose", str(model), "--out", str(out_dir), "--lint", "off"]
    if checkpoint is not None and zoo is not None:
        sub += ["--config", zoo]
    cmd = export_command(sub, settings)
    done = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
    cards = [line[len("card: ") :] for line in done.stdout.splitlines() if line.startswith("card: ")]
    if done.returncode != 0 or len(cards) != 1:
        raise RuntimeError(f"exporting {model} failed (`{' '.join(cmd)}` exited with {done.returncode})")
    return Path(cards[0])


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

#: Settings fields ``pose-eval`` takes as options (the same flags as ``pose-serve``).
_SETTINGS = (*MODEL_FIELDS, *RUNTIME_FIELDS, *PIPELINE_FIELDS, *DETECTOR_FIELDS, *CACHE_FIELDS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="pose-eval",
        description="COCO keypoint (AP) or MPII (PCKh) evaluation of the served pipeline; prints the MMPose model-zoo "
        "table.",
    )
    add_version_option(p)
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="auto",
        help="coco (AP) or mpii (PCKh); default auto: the data set of the model card (its keypoint schema)",
    )
    p.add_argument("--ann", required=True, help="annotation file: person_keypoints_val2017.json or mpii_val.json")
    p.add_argument("--images", help="image folder (val2017/, MPII's images/); not with --results")
    p.add_argument(
        "--results",
        metavar="JSON",
        help="COCO: score this keypoint results file (a JSON list of {image_id, category_id, keypoints, score}, e.g. "
        "pose-predict --runner ray's coco_results.json) against --ann as it is (no rescoring, no OKS-NMS); no model "
        "or images are needed (results of images that --ann does not have are left out, and counted)",
    )
    p.add_argument("--headboxes", help="MPII: the head boxes of --ann for PCKh (mpii_gt_val.mat)")
    m = p.add_argument_group("pose model (--pose CARD from the settings, or one of)")
    m.add_argument("--zoo", help="zoo model name, exported on the fly (needs the export package)")
    m.add_argument("--checkpoint", help=".pth checkpoint, exported on the fly (needs the export package)")
    b = p.add_argument_group("boxes (COCO; MPII uses its annotations' boxes)")
    b.add_argument("--boxes", choices=BOX_SOURCES, default="gt", help="box source (default gt)")
    b.add_argument("--det-file", help="detection results (COCO_val2017_detections_AP_H_56_person.json format)")
    b.add_argument(
        "--det-file-score-thr",
        type=float,
        default=0.0,
        help="minimum score of a --det-file box (default 0.0, as MMPose's configs)",
    )
    e = p.add_argument_group("COCO metric")
    e.add_argument(
        "--score-mode",
        choices=("auto", *SCORE_MODES),
        default="auto",
        help="person score (MMPose CocoMetric score_mode); default auto: the card's (bbox_rle for RLE's COCO "
        "configs), else bbox_keypoint",
    )
    e.add_argument(
        "--no-rescore", action="store_true", help="person score = mean keypoint score (--score-mode keypoint)"
    )
    e.add_argument("--no-nms", action="store_true", help="switch OKS-NMS off")
    e.add_argument("--nms-thr", type=float, default=DEFAULT_NMS_THR)
    e.add_argument("--kpt-score-thr", type=float, default=DEFAULT_KPT_SCORE_THR)
    e.add_argument("--coco-backend", choices=["auto", "xtcocotools", "pycocotools"], default="auto")
    e.add_argument("--pck-thr", type=float, default=0.05, help="PCK threshold (fraction of the box's longer side)")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", default="eval_out", help="where the table, results JSON, metrics and plot go")
    o.add_argument("--arch", help="name in the table's Arch column (default: the card's name)")
    o.add_argument("--max-images", type=int, help="only the first N images (quick runs)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument(
        "--compare-precision",
        choices=list(SETTINGS_PRECISIONS),
        help="run the same images again at this precision (both models; openvino runtime), print the AP "
        "difference to the --precision run and judge it by the reduced-precision gate (models/tolerance.py; "
        "metrics.json: precision_comparison, precision_gate); exit status 1 when the gate fails",
    )
    add_settings_options(p.add_argument_group("runtime and pipeline settings (as pose-serve)"), _SETTINGS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the job; returns the exit status: 0 ok; 1 a failure (a file or model that cannot be found or loaded, a failed
    export, a reduced-precision comparison that failed its gate); 2 a usage error (an invalid setting, a missing or
    contradictory option)."""
    args = parse_args(argv)
    from pydantic import ValidationError

    from core.errors import PoseServiceError

    try:
        return _main(args)
    except (FileNotFoundError, ValueError, RuntimeError, PoseServiceError) as exc:
        print(f"pose-eval: {exc}", file=sys.stderr)
        # a bad command line (pydantic's ValidationError: an invalid setting) is a usage error, as argparse's
        return 2 if isinstance(exc, (UsageError, ValidationError)) else 1


def _main(args: argparse.Namespace) -> int:
    if args.results:
        return _main_results(args)
    if not args.images:
        raise UsageError("--images is required (or --results to score a results file)")
    settings = settings_from_args(args)
    out_dir = Path(args.out_dir)
    n_sources = sum(x is not None for x in (settings.pose_model, args.zoo, args.checkpoint))
    if n_sources != 1:
        raise UsageError("give exactly one of --pose, --zoo, --checkpoint")
    if args.boxes == "file" and not args.det_file:
        raise UsageError("--boxes file needs --det-file")
    if args.boxes == "detector" and settings.detector_model is None:
        raise UsageError("--boxes detector needs --detector")
    card_path = settings.pose_model or card_from_checkpoint(args.zoo, args.checkpoint, out_dir / "model", settings)
    settings = settings.model_copy(
        update={
            "pose_model": card_path,
            "detector_model": settings.detector_model if args.boxes == "detector" else None,
        }
    )
    try:
        card = ModelCard.load(card_path_for(card_path))
    except ModelCardError as exc:
        raise ValueError(str(exc)) from exc
    card_dataset, card_score_mode = card_evaluation(card)
    dataset = card_dataset if args.dataset == "auto" else args.dataset
    if dataset not in ("coco", "mpii"):
        raise UsageError(f"cannot evaluate {card.name!r} on {dataset!r}: give --dataset coco or mpii")
    out_dir.mkdir(parents=True, exist_ok=True)
    if dataset == "mpii":
        if args.compare_precision:
            raise UsageError("--compare-precision is implemented for COCO keypoint AP only")
        pipeline = PosePipeline.from_settings(settings, batching=False)
        try:
            return _main_mpii(args, pipeline, settings, out_dir)
        finally:
            pipeline.close()
    score_mode = "keypoint" if args.no_rescore else (card_score_mode if args.score_mode == "auto" else args.score_mode)
    return _main_coco(args, settings, out_dir, score_mode)


def _main_results(args: argparse.Namespace) -> int:
    """``--results``: COCOeval (keypoints, COCO-17 sigmas) of a results file as it is; prints COCOeval's summary and
    writes ``metrics.json`` (``stats``, ``settings``) in ``--out-dir``.

    Raises:
        FileNotFoundError: a missing file. ValueError: not a JSON list, or no result of an image in ``--ann``.
    """
    from evaluation.metric import load_coco, run_cocoeval

    path = Path(args.results)
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: a JSON list of COCO keypoint results expected")
    coco = load_coco(args.ann, args.coco_backend)
    known = set(coco.getImgIds())
    kept = [r for r in records if isinstance(r, dict) and r.get("image_id") in known]
    stats, backend, summary = run_cocoeval(coco, kept, backend=args.coco_backend)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_settings = {"dataset": "coco", "results": str(path), "coco_backend": backend, "results_count": len(kept),
                    "results_not_in_ann": len(records) - len(kept)}  # fmt: skip
    if len(kept) < len(records):
        print(f"pose-eval: {len(records) - len(kept)} results of images that are not in --ann were left out")
    (out_dir / "metrics.json").write_text(json.dumps({"stats": stats, "settings": run_settings}, indent=2))
    print(summary, end="")
    print(f"AP {stats['AP']:.4f} ({len(records)} results, COCOeval: {backend})")
    print(f"written: {out_dir / 'metrics.json'}")
    return 0


def _main_mpii(args: argparse.Namespace, pipeline: PosePipeline, settings: Settings, out_dir: Path) -> int:
    if args.boxes != "gt":
        raise UsageError("MPII is evaluated on its annotations' boxes (--boxes gt)")
    if not args.headboxes:
        raise UsageError("--dataset mpii needs --headboxes (mpii_gt_val.mat) for PCKh")
    instances = read_mpii(args.ann, args.headboxes)
    preds = run_pipeline_mpii(
        instances, args.images, pipeline, max_images=args.max_images, progress=not args.no_progress
    )
    stats = score_mpii(preds)
    pose = pipeline.pose
    arch = args.arch or pose.card.name
    columns = zoo_columns(stats)
    table = format_ap_table([{"arch": arch, "input_size": pose.input_size, "stats": columns}], "mpii")
    run_settings = {
        "dataset": "mpii",
        "boxes": "annotations (center, scale)",
        "flip_test": preds.notes["flip_test"],
        "runtime": settings.runtime,
        "precision": settings.precision,
        "providers": pose.runtime.describe().get("active_providers"),
        "images": len({i.file_name for i in preds.instances}),
        "persons": len(preds.instances),
    }
    note = (
        f"\nMPII PCKh (MMPose MpiiPCKAccuracy): Mean = PCKh@0.5, Mean@0.1 = PCKh@0.1; flip test: "
        f"{run_settings['flip_test']}; images: {run_settings['images']}; persons: {run_settings['persons']}.\n"
    )
    records = [
        {"index": i.index, "image": i.file_name, "keypoints": kp.reshape(-1).tolist()}
        for i, kp in zip(preds.instances, preds.keypoints)
    ]
    metrics = {"arch": arch, "input_size": list(pose.input_size), "stats": columns, "pckh": stats}
    written = _write_outputs(
        out_dir, "pckh_table.md", table + note, "results.mpii.json", records, metrics, run_settings
    )
    print("".join(f"{k}: {v:.2f}\n" for k, v in stats.items()), end="")
    print(table + note, end="")
    print(f"written: {', '.join(map(str, written))}")
    return 0


def _write_outputs(
    out_dir: Path, table_file: str, table: str, results_file: str, records: list, metrics: dict, run_settings: dict
) -> list[Path]:
    """The job's files: the table (Markdown), the result records (JSON list) and ``metrics.json`` (the figures and
    the run's settings). Returns their paths."""
    paths = [out_dir / table_file, out_dir / results_file, out_dir / "metrics.json"]
    paths[0].write_text(table)
    write_results_json(records, paths[1])
    paths[2].write_text(json.dumps({**metrics, "settings": run_settings}, indent=2))
    return paths


def _coco_run_settings(
    args: argparse.Namespace, settings: Settings, score_mode: str, result, preds, described: dict
) -> dict:
    """The run's settings as ``metrics.json`` records them (boxes, flip test, scoring, NMS, runtime, counts)."""
    return {
        "dataset": "coco",
        "boxes": args.boxes,
        "det_file": args.det_file,
        "det_file_score_thr": args.det_file_score_thr if args.boxes == "file" else None,
        "detector": str(settings.detector_model) if settings.detector_model else None,
        "det_score_threshold": settings.det_score_thr if args.boxes == "detector" else None,
        "flip_test": preds.notes["flip_test"],
        "score_mode": score_mode,
        "oks_nms": None if args.no_nms else args.nms_thr,
        "coco_backend": result.backend,
        "runtime": settings.runtime,
        "precision": described["pose"]["precision"],
        "detector_precision": described["detector"]["precision"] if described["detector"] else None,
        "providers": described["pose"]["runtime"].get("active_providers"),
        "images": len(preds.image_ids),
        "persons_in": preds.num_bboxes,
        "results_after_nms": result.num_results,
        **{k: v for k, v in preds.notes.items() if k != "flip_test"},
    }


def _main_coco(args: argparse.Namespace, settings: Settings, out_dir: Path, score_mode: str) -> int:
    from evaluation.metric import load_coco

    coco = load_coco(args.ann, args.coco_backend)
    detections = None
    if args.boxes == "file":
        detections = load_detection_file(args.det_file, set(coco.getImgIds()), args.det_file_score_thr)
    precisions = [settings.precision] + ([args.compare_precision] if args.compare_precision else [])
    runs = evaluate_precisions(
        settings,
        coco,
        args.ann,
        args.images,
        precisions,
        same_bboxes=True,
        box_source=args.boxes,
        detections=detections,
        max_images=args.max_images,
        progress=not args.no_progress,
        score_mode=score_mode,
        nms=not args.no_nms,
        nms_thr=args.nms_thr,
        kpt_score_thr=args.kpt_score_thr,
        backend=args.coco_backend,
        pck_thr=args.pck_thr,
    )
    result, records, preds, described = runs[0].result, runs[0].records, runs[0].predictions, runs[0].describe
    card = described["pose"]["card"]
    input_size = (card["input"]["width"], card["input"]["height"])
    arch = args.arch or card["name"]
    table = format_ap_table([{"arch": arch, "input_size": input_size, "stats": result.stats}])
    run_settings = _coco_run_settings(args, settings, score_mode, result, preds, described)
    note = (
        f"\nBoxes: {args.boxes}; flip test: {run_settings['flip_test']}; person score: {score_mode}; "
        f"OKS-NMS: {'off' if args.no_nms else args.nms_thr}; COCOeval: {result.backend}; "
        f"images: {run_settings['images']}; persons: {preds.num_bboxes} -> {result.num_results} after NMS.\n"
    )
    gates = compare_precision_runs(coco, runs, args.coco_backend) if len(runs) > 1 else []
    metrics = {
        "arch": arch,
        "input_size": list(input_size),
        "stats": result.stats,
        "per_keypoint": result.per_keypoint,
        "precision_comparison": None
        if len(runs) == 1
        else {r.precision: {**r.result.stats, "AP_delta": r.result.stats["AP"] - result.stats["AP"]} for r in runs},
        "precision_gate": {g.precision: g.to_dict() for g in gates} or None,
    }
    written = _write_outputs(
        out_dir, "ap_table.md", table + note, "results.keypoints.json", records, metrics, run_settings
    )
    written.append(
        plot_per_keypoint(result.per_keypoint, out_dir / "per_keypoint.png", title=f"{arch}: per-keypoint OKS / PCK")
    )
    print(result.summary, end="")
    print(table + note, end="")
    if len(runs) > 1:
        comparison = format_precision_table(runs)
        (out_dir / "precision_table.md").write_text(comparison)
        written.append(out_dir / "precision_table.md")
        print("\nSame images, both models at each precision:\n" + comparison, end="")
        print(
            f"AP({runs[1].precision}) - AP({runs[0].precision}) = {runs[1].result.stats['AP'] - result.stats['AP']:+.4f}"
        )
        print("".join(g.describe() for g in gates), end="")
    print(f"written: {', '.join(map(str, written))}")
    failed = [g.precision for g in gates if not g.passed]
    if failed:
        print(f"pose-eval: {', '.join(failed)} failed the reduced-precision accuracy gate (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
