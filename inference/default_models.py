"""Default models: what ``pose-serve`` and ``pose-predict`` run when started without model paths (torch-free, HTTP-free).

:func:`resolve_models` is the one entry point of both commands: a checkpoint becomes its exported card, unset model
paths become the defaults. :func:`check_model_files` then checks, in a moment and before a server binds its port, that
the files exist and the card is valid, so a wrong path fails the command at once (``pose-serve`` exits 1) rather than
behind a listening server whose ``/readyz`` answers 503.

The defaults are a person detector chosen by ``Settings.default_detector`` (``POSE_DEFAULT_DETECTOR``): the Ultralytics
``yolo11n`` (AGPL-3.0 weights; the default) or ``rtmdet-nano`` (MMPose's RTMDet-nano person detector as MMDeploy's ONNX,
Apache-2.0), and the ``ipr_res50_debias`` pose model (MMPose's published Debias-IPR ResNet-50 checkpoint), prepared by
``pose-export defaults`` into the cache (:class:`core.cache.CacheLayout`: ``detector(name)``, ``default_pose_card``).

A pose checkpoint given as the pose model (``pose-serve --pose run/best.pth``, e.g. from ``pose-train``) is
exported the same way on first start by :func:`resolve_pose_checkpoint` (``python -m export.cli pose``) and cached
by the checkpoint's SHA-256 (``CacheLayout.trained_pose``).

A zoo name given as the pose model (``pose-serve --pose td-reg_res50_rle``, the names ``pose-zoo list`` prints and
``pose-eval --zoo`` takes) is served from ``CacheLayout.zoo_pose_card`` (``<cache>/pose/<name>.json``, where the default
model lies too), exported there on first start by :func:`resolve_zoo_pose` (``python -m export.cli pose NAME``:
MMPose's checkpoint downloaded and SHA-256-checked, exported, verified). A value that is neither a file nor a zoo name
fails with the zoo names closest to it.

When they are missing, :func:`resolve_default_models` runs the preparation in a subprocess
(``python -m export.cli defaults``, so torch never enters the server process) if the export extra is
installed and ``Settings.prepare_defaults`` is on; otherwise, or if preparation fails (e.g. no network),
it raises :class:`DefaultModelsMissing` whose message names the files it looked for and the command
that prepares them.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.cache import DEFAULT_DETECTOR, CacheLayout
from core.cli_options import export_command, export_extra_installed
from core.errors import ModelLoadError
from core.hashing import sha256_file
from core.settings import Settings
from models.card import ModelCardError, card_path_for
from models.detector_card import DetectorCardError, find_detector_card
from models.zoo import ZOO

PREPARE_COMMAND = "pose-export defaults"
#: File suffixes of pose checkpoints that ``pose-serve --pose`` exports before serving.
CHECKPOINT_SUFFIXES = (".pth", ".pt")
#: File suffixes that make a ``--pose`` value a path, never a zoo name (cards, models, engines, checkpoints).
MODEL_FILE_SUFFIXES = (".json", ".onnx", ".xml", ".engine", ".plan", *CHECKPOINT_SUFFIXES)


class DefaultModelsMissing(ModelLoadError):
    """The default models are not in the cache and could not be prepared."""


def defaults_present(cache: CacheLayout, detector: str = DEFAULT_DETECTOR) -> bool:
    """Whether the default detector ``detector``'s ONNX (and its detector card, but for ``yolo11n``, which older
    versions exported without one and whose contract the graph tells), the pose card and the pose ONNX beside it
    all exist."""
    card, det = cache.default_pose_card, cache.detector(detector)
    det_ok = det.is_file() and (detector == DEFAULT_DETECTOR or det.with_suffix(".json").is_file())
    return det_ok and card.is_file() and card.with_suffix(".onnx").is_file()


def resolve_default_models(settings: Settings) -> tuple[Path, Path]:
    """The default detector ONNX and pose card, preparing them first if possible.

    Args:
        settings: ``default_detector`` (which detector), ``cache_dir`` (where they live) and ``prepare_defaults`` (run ``python -m export.cli
            defaults --cache-dir ...`` in a subprocess when they are missing and the export extra is
            installed; its download / export progress goes to this process's stderr; ``offline``, the cache and
            thread settings reach it as flags, :func:`export_command`).

    Returns:
        (detector ONNX path, pose model card JSON path).

    Raises:
        DefaultModelsMissing: the files are absent and could not be prepared; the message lists the
            paths looked for and the command that prepares them.
    """
    cache = settings.cache
    detector, card = cache.detector(settings.default_detector), cache.default_pose_card
    if defaults_present(cache, settings.default_detector):
        return detector, card
    why = ""
    if settings.prepare_defaults and export_extra_installed():
        print(f"default models missing in {cache.root}; preparing them ({PREPARE_COMMAND})", file=sys.stderr)
        cmd = export_command(["defaults"], settings)
        rc = subprocess.run(cmd, check=False).returncode
        if rc == 0 and defaults_present(cache, settings.default_detector):
            return detector, card
        why = f"preparing them failed (`{' '.join(cmd)}` exited with {rc}; see its messages above). "
    elif settings.prepare_defaults:
        why = "the export extra (torch, onnx) is not installed, so they cannot be prepared here. "
    raise DefaultModelsMissing(
        f"default models not found: looked for\n  {detector}\n  {card} (and {card.with_suffix('.onnx').name} beside it)\n"
        f"{why}Prepare them with `{PREPARE_COMMAND} --cache-dir {cache.root}` (needs `pip install 'poseserve[export]'` "
        "and network access to GitHub and download.openmmlab.com), or pass --detector and --pose."
    )


def is_checkpoint(path: str | Path) -> bool:
    """Whether a pose model path is a checkpoint (``.pth`` / ``.pt``) rather than a card or an ONNX file."""
    return Path(path).suffix.lower() in CHECKPOINT_SUFFIXES


def _cached_card(folder: Path) -> Path | None:
    cards = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return cards[0] if len(cards) == 1 and cards[0].with_suffix(".onnx").is_file() else None


def resolve_pose_checkpoint(checkpoint: str | Path, settings: Settings) -> Path:
    """The model card of a pose checkpoint, exporting it first if its SHA-256 is not in the cache yet.

    The export runs ``python -m export.cli pose CHECKPOINT --out <tmp> --cache-dir ...`` in a subprocess (torch never
    enters the server process; the export is verified against torch there), into a temporary folder renamed to
    ``settings.cache.trained_pose(sha256)`` when it succeeded, so a failed or interrupted export leaves nothing behind.

    Args:
        checkpoint: a ``.pth`` of ours (``pose-train``) or MMPose's.
        settings: the cache root and ``offline`` (passed on to the export).

    Returns:
        The card JSON path (its ONNX beside it).

    Raises:
        ModelLoadError: the file is missing, the export extra is not installed, or the export failed (the message
            names the command to run by hand).
    """
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise ModelLoadError(f"pose checkpoint not found: {checkpoint}")
    folder = settings.cache.trained_pose(sha256_file(checkpoint))
    card = _cached_card(folder)
    if card is not None:
        return card
    hint = f"export it by hand (`pose-export pose {checkpoint} --out DIR`) and pass --pose DIR/<name>.json"
    if not export_extra_installed():
        raise ModelLoadError(
            f"{checkpoint} is a checkpoint: serving it needs the export extra (torch, onnx) to convert it once; {hint}"
        )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = export_command(["pose", str(checkpoint), "--out", str(tmp)], settings)
    print(f"exporting {checkpoint} to ONNX for serving (once; cached in {folder})", file=sys.stderr)
    rc = subprocess.run(cmd, check=False).returncode
    card = _cached_card(tmp)
    if rc != 0 or card is None:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelLoadError(f"exporting {checkpoint} failed (`{' '.join(cmd)}` exited with {rc}); {hint}")
    tmp.rename(folder)
    return folder / card.name


def zoo_name_of(pose_model: str | Path) -> str | None:
    """The zoo name a pose-model value stands for, or None when it is a path: a value is taken as a name when no file
    or folder of that name exists and it is a bare name (no folder part, no model-file suffix of
    :data:`MODEL_FILE_SUFFIXES`), whether or not the zoo knows it (:func:`resolve_zoo_pose` says so)."""
    p = Path(pose_model)
    text = str(pose_model)
    if p.exists() or not text or os.sep in text or "/" in text or p.suffix.lower() in MODEL_FILE_SUFFIXES:
        return None
    return text


def resolve_zoo_pose(name: str, settings: Settings) -> Path:
    """The served card of the zoo model ``name`` (``settings.cache.zoo_pose_card``), exporting it there first when it
    is missing.

    The export runs ``python -m export.cli pose NAME --out <tmp> --cache-dir ...`` in a subprocess (torch never enters
    the server process): MMPose's checkpoint is downloaded into ``<cache>/checkpoints`` and its SHA-256 checked, then
    exported and verified against torch. Its ONNX and card are moved into ``<cache>/pose/`` (ONNX first, card last), so
    a failed or interrupted export leaves nothing that looks complete.

    Args:
        name: a ``models.zoo`` name (``pose-zoo list``).
        settings: the cache root, ``offline`` and ``prepare_defaults`` (False: never export here, only say how).

    Returns:
        The card JSON path (its ONNX beside it).

    Raises:
        ModelLoadError: an unknown name (the message lists the closest zoo names), or the card is missing and cannot
            be exported here (no export extra, ``prepare_defaults`` off, or the export failed; the message names the
            command to run).
    """
    if name not in ZOO:
        close = difflib.get_close_matches(name, list(ZOO), n=5, cutoff=0.6)
        hint = f"closest zoo names: {', '.join(close)}" if close else "no zoo name is close to it"
        raise ModelLoadError(
            f"pose model {name!r} is neither a file nor a zoo model name; {hint} (`pose-zoo list` lists them all)"
        )
    card = settings.cache.zoo_pose_card(name)
    if card.is_file() and card.with_suffix(".onnx").is_file():
        return card
    command = f"pose-export pose {name} --out {card.parent} --cache-dir {settings.cache.root}"
    hint = (
        f"prepare it with `{command}` (needs `pip install 'poseserve[export]'` and network access to "
        "download.openmmlab.com), or pass --pose CARD.json"
    )
    if not settings.prepare_defaults:
        raise ModelLoadError(f"zoo model {name} is not exported yet ({card} is missing; --no-prepare-defaults); {hint}")
    if not export_extra_installed():
        raise ModelLoadError(
            f"zoo model {name} is not exported yet ({card} is missing) and the export extra (torch, onnx) is not "
            f"installed here; {hint}"
        )
    tmp = card.parent / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = export_command(["pose", name, "--out", str(tmp)], settings)
    print(f"exporting zoo model {name} for serving (once; cached in {card.parent})", file=sys.stderr)
    try:
        rc = subprocess.run(cmd, check=False).returncode
        made = tmp / card.name
        if rc != 0 or not made.is_file() or not made.with_suffix(".onnx").is_file():
            raise ModelLoadError(f"exporting zoo model {name} failed (`{' '.join(cmd)}` exited with {rc}); {hint}")
        os.replace(made.with_suffix(".onnx"), card.with_suffix(".onnx"))
        os.replace(made, card)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return card


def resolve_models(settings: Settings) -> Settings:
    """The settings with runnable model paths: a pose checkpoint (``.pth``) turned into its exported card
    (:func:`resolve_pose_checkpoint`), a zoo name into its card in the cache (:func:`resolve_zoo_pose`), then unset
    model paths filled with the default models from the cache (:func:`resolve_default_models`, preparing them if
    allowed). ``pose-serve``, ``pose-predict`` and ``PoseEstimator.from_pretrained`` call it.

    Raises:
        ModelLoadError: defaults are missing (the message names the files and the command that prepares them), the
            checkpoint or zoo model cannot be exported, or the pose model is neither a file nor a zoo name.
    """
    if settings.pose_model is not None and is_checkpoint(settings.pose_model):
        settings = settings.model_copy(update={"pose_model": resolve_pose_checkpoint(settings.pose_model, settings)})
    elif settings.pose_model is not None and (name := zoo_name_of(settings.pose_model)) is not None:
        settings = settings.model_copy(update={"pose_model": resolve_zoo_pose(name, settings)})
    if settings.detector_model is not None and settings.pose_model is not None:
        return settings

    det, pose = resolve_default_models(settings)
    return settings.model_copy(
        update={"detector_model": settings.detector_model or det, "pose_model": settings.pose_model or pose}
    )


def check_model_files(settings: Settings) -> None:
    """Check the models of resolved settings (:func:`resolve_models`) without loading them: the pose card parses
    (the card itself, ``<stem>.json`` beside a model file, or the card embedded in an ONNX file, which onnxruntime
    reads: ``inference.pose_estimator.load_card``) and the model file it names exists, and the detector file exists.
    Reading the weights (but for that embedded card), compiling and warming up are left to the runtimes.

    Raises:
        ModelLoadError: the first problem found, naming the path.
    """
    if settings.pose_model is None:
        raise ModelLoadError("no pose model configured (POSE_POSE_MODEL or --pose)")
    pose = Path(settings.pose_model).expanduser()
    if not pose.exists():
        raise ModelLoadError(f"pose model not found: {pose}")
    from inference.pose_estimator import load_card  # onnxruntime: only for an ONNX whose card is embedded

    card_path = card_path_for(pose)
    try:
        card = load_card(pose)
    except ModelCardError as exc:
        raise ModelLoadError(str(exc)) from exc
    except OSError as exc:  # a folder, no permission
        raise ModelLoadError(f"pose model card {card_path} cannot be read: {exc}") from exc
    if not card.model_path().is_file():
        raise ModelLoadError(f"the model file of the card {card_path} is not found: {card.model_path()}")
    detector = settings.detector_model
    if detector is not None:
        try:
            det_model, _ = find_detector_card(detector)  # an embedded card is read when the model is opened
        except DetectorCardError as exc:
            raise ModelLoadError(str(exc)) from exc
        if not det_model.is_file():
            raise ModelLoadError(f"detector model not found: {det_model}")


def served_onnx_files(settings: Settings) -> tuple[Path | None, Path | None]:
    """(detector ONNX, pose ONNX) of resolved settings (:func:`resolve_models`), None for a model that is not an
    ``.onnx`` file (a TensorRT engine given directly, an OpenVINO IR). Either model may be its card: the card's
    ``model_file`` is taken (read without onnxruntime).

    Raises:
        ModelLoadError: the pose or detector card does not parse.
    """
    from models.card import ModelCard

    def onnx_or_none(path) -> Path | None:
        return Path(path).expanduser() if path is not None and Path(path).suffix.lower() == ".onnx" else None

    pose = settings.pose_model
    if pose is not None and Path(pose).suffix.lower() == ".json":
        try:
            pose = ModelCard.load(Path(pose).expanduser()).model_path()
        except (ModelCardError, OSError) as exc:
            raise ModelLoadError(f"pose model card {pose} cannot be read: {exc}") from exc
    detector = settings.detector_model
    if detector is not None:
        try:
            detector = find_detector_card(detector)[0]
        except DetectorCardError as exc:
            raise ModelLoadError(str(exc)) from exc
    return onnx_or_none(detector), onnx_or_none(pose)


def engine_command(settings: Settings) -> list[str]:
    """``python -m export.cli engine --served`` with the server's models, engine profile, precision and cache: it
    builds each served ONNX model's engine unless cached (``export.tensorrt.EngineCache``: a cache hit costs a
    TensorRT import and the ONNX files' SHA-256), with the profile the server's batchers use."""
    det, pose = served_onnx_files(settings)
    precision = "fp16" if settings.trt_precision == "auto" else settings.trt_precision
    sub = ["engine", "--served", "--lint", "off", "--precision", precision]
    sub += ["--max-batch-size", str(settings.max_batch_size), "--det-max-batch-size", str(settings.det_max_batch_size)]
    sub += ["--trt-opt-batch-size", str(settings.trt_opt_batch_size)]
    sub += [*(["--detector", str(det)] if det else []), *(["--pose", str(pose)] if pose else [])]
    return export_command(sub, settings)


def prepare_engines(settings: Settings) -> bool:
    """With ``runtime`` tensorrt and ``build_engines`` on, build the missing TensorRT engines of the served ``.onnx``
    models before the server binds its port (:func:`engine_command` in a subprocess: torch-free, needs only the
    ``tensorrt`` extra; its progress goes to this process's stderr). A first build takes minutes (the GPU image's
    health check allows for it); later starts find the engines cached.

    Returns:
        True when the subprocess ran; False when there was nothing to do (another runtime, ``build_engines`` off, or
        no served model is an ``.onnx`` file).

    Raises:
        ModelLoadError: the build failed (the message names the command, to run it by hand and read its output).
    """
    if settings.runtime != "tensorrt" or not settings.build_engines:
        return False
    if served_onnx_files(settings) == (None, None):
        return False
    cmd = engine_command(settings)
    shown = "pose-export " + " ".join(cmd[3:])
    print(f"pose-serve: building missing TensorRT engines: {shown}", file=sys.stderr, flush=True)
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise ModelLoadError(
            f"building the TensorRT engines failed (exit status {result.returncode}; its message is above); run "
            f"`{shown}` to retry, or POSE_BUILD_ENGINES=false to only load cached engines"
        )
    return True
