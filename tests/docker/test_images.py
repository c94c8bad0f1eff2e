"""The Dockerfile, compose file and constraints files (no Docker engine needed): every image installs from a
full pin set whose versions satisfy pyproject's ranges, the CUDA stack is one set, the GPU images run the
build-time CUDA check, the servers run as a non-root user with a health check on $POSE_PORT, the eval job has
none, and compose offers a GPU and a CPU profile."""

from __future__ import annotations

import re

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO_ROOT

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10 (requires-python >= 3.10)
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
CONSTRAINTS = REPO_ROOT / "docker" / "constraints"


def stages() -> dict[str, tuple[str, str]]:
    """stage name -> (base, body) of every ``FROM base AS name`` stage."""
    out = {}
    for block in re.split(r"\n(?=FROM )", DOCKERFILE):
        m = re.match(r"FROM (\S+)(?: AS (\S+))?\n", block)
        if m and m.group(2):
            out[m.group(2)] = (m.group(1), block)
    return out


def pins(image: str) -> dict[str, Version]:
    lines = (CONSTRAINTS / f"{image}.txt").read_text().splitlines()
    return {n.lower(): Version(v) for n, v in (line.split("==") for line in lines if line and not line.startswith("#"))}


def test_no_syntax_directive_and_a_scratch_source_stage():
    assert not DOCKERFILE.startswith("# syntax") and "# syntax=" not in DOCKERFILE  # needs a registry at build time
    s = stages()
    assert s["source"][0] == "scratch"
    # the CPU images never build the CUDA image: their chain reaches the sources, not gpu-base
    for target in ("export", "serve-cpu"):
        base = s[target][0]
        while base in s:
            assert base != "gpu-base", f"{target} builds on the CUDA image"
            base = s[base][0]
    assert "COPY --from=source" in s["gpu-base"][1] and "COPY --from=source" in s["cpu-base"][1]


@pytest.mark.parametrize("target", ["serve", "serve-cpu"])
def test_servers_run_as_a_non_root_user_with_a_health_check_on_pose_port(target):
    body = stages()[target][1]
    users = re.findall(r"^USER (\S+)", body, re.M)
    assert users and users[-1] == "pose"
    health = re.search(r"^HEALTHCHECK .*?\n\s+CMD (.*)$", body, re.M)
    assert health and "${POSE_PORT}" in health.group(1) and "8000" not in health.group(1)
    assert not health.group(1).startswith("[")  # shell form: the variable is expanded
    setup = (REPO_ROOT / "docker" / "setup-base.sh").read_text()
    assert "--uid 10001" in setup and "chown pose:pose /models" in setup


def test_eval_runs_no_server_so_no_health_check():
    base, body = stages()["eval"]
    assert base == "serve" and "HEALTHCHECK NONE" in body and re.findall(r"^USER (\S+)", body, re.M)[-1] == "pose"


def test_every_pip_install_uses_its_images_constraints_file():
    installs = re.findall(r"pip install ([^\n&]*)", DOCKERFILE)
    assert len(installs) >= 6
    for args in installs:
        m = re.search(r"-c docker/constraints/(\S+)\.txt", args)
        assert m, f"pip install without a constraints file: {args}"
        assert (CONSTRAINTS / f"{m.group(1)}.txt").is_file()
    export = stages()["export"][1]
    assert "--index-url https://download.pytorch.org/whl/cpu torch torchvision" in export  # CPU torchvision too
    assert pins("export")["torchvision"] == Version("0.28.0+cpu") and pins("export")["torch"] == Version("2.13.0+cpu")


@pytest.mark.parametrize("target, extra", [("serve", "serve-gpu"), ("serve-cpu", "serve")])
def test_the_servers_install_the_video_extra(target, extra):
    """POST /pose/video, the /pose/stream WebSocket and pose-predict need PyAV: `docker compose up` serves them (eval
    builds on the GPU serve stage, so it has them too)."""
    assert re.search(rf'pip install -c docker/constraints/\S+ "\.\[{extra},video\]"', stages()[target][1])


def test_the_gpu_images_check_the_cuda_stack_at_build_time():
    body = stages()["serve"][1]
    assert 'python -m inference.cuda_stack --cuda "${CUDA_VERSION}"' in body
    assert body.index("inference.cuda_stack") > body.index("pip install")  # after the install it checks
    assert "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04" in DOCKERFILE


def _requirements() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: [Requirement(r) for r in v] for k, v in project["optional-dependencies"].items()}
    extras["base"] = [Requirement(r) for r in project["dependencies"]]
    return extras


@pytest.mark.parametrize(
    "image, extras",
    [
        ("serve-gpu", ["base", "serve-gpu", "tensorrt", "video"]),
        ("serve-cpu", ["base", "serve", "video"]),
        ("eval", ["base", "serve-gpu", "tensorrt", "video", "eval"]),
        ("export", ["base", "serve", "export"]),
    ],
)
def test_each_lock_satisfies_pyproject_and_pins_every_requirement(image, extras):
    locked = pins(image)
    reqs = _requirements()
    for extra in extras:
        for req in reqs[extra]:
            if req.name == "poseserve":
                continue
            name = req.name.lower()
            assert name in locked, f"{image}: {name} ({extra}) is not pinned"
            assert req.specifier.contains(locked[name], prereleases=True), f"{image}: {name} {locked[name]} vs {req}"


def test_pyproject_gpu_ranges_are_the_tested_releases():
    """Issue 21, defect 5: the pip ranges are what the images pin (onnxruntime-gpu 1.22, whose TensorRT EP is built
    with TensorRT 10.9; TensorRT 10.9), not 1.23 / 10.16. onnxruntime-gpu 1.18 on PyPI is a CUDA 11.8 build, 1.24.1+
    links CUDA 12.8 / 13; cuda-python 13 drops ``cuda.cudart``; cuda-python 12.6 shipped cuda/bindings itself
    (12.8+ is a metapackage of cuda-bindings, named below 13 so that PyPI's CUDA 13 torch cannot join it)."""
    reqs = {r.name.lower(): r.specifier for r in _requirements()["serve-gpu"] + _requirements()["tensorrt"]}
    ort, cuda_python, trt = reqs["onnxruntime-gpu"], reqs["cuda-python"], reqs["tensorrt-cu12"]
    assert ort.contains("1.22.0") and not ort.contains("1.19.0") and not ort.contains("1.23.2")
    assert cuda_python.contains("12.9.7") and not cuda_python.contains("12.6.2.post1")
    assert not cuda_python.contains("13.0.0") and not reqs["cuda-bindings"].contains("13.0.3")
    assert trt.contains("10.9.0.34") and not trt.contains("10.16.0.72") and not trt.contains("11.0.0")
    assert "onnxruntime" not in {r.name.lower() for r in _requirements()["serve-gpu"]}  # never both


def test_one_cuda_stack_in_every_gpu_image():
    """CUDA 12 throughout: onnxruntime-gpu 1.19..1.23 (CUDA 12.2 builds), TensorRT 10 for CUDA 12, cuda-python 12.6+."""
    for image in ("serve-gpu", "eval"):
        p = pins(image)
        assert p["onnxruntime-gpu"] == Version("1.22.0") and "onnxruntime" not in p  # never both
        assert p["tensorrt-cu12"] == p["tensorrt-cu12-libs"] == p["tensorrt-cu12-bindings"] == Version("10.9.0.34")
        assert Version("12.8") <= p["cuda-python"] < Version("13") and p["cuda-bindings"] == p["cuda-python"]
        # the one nvidia- wheel: the CUDA runtime tensorrt-cu12-libs pulls, pinned to the base image's CUDA 12.6
        assert [n for n in p if n.startswith("nvidia-")] == ["nvidia-cuda-runtime-cu12"]
        assert p["nvidia-cuda-runtime-cu12"].release[:2] == (12, 6) and not any(n.endswith("-cu13") for n in p)
    assert pins("serve-cpu")["onnxruntime"] == pins("export")["onnxruntime"] == Version("1.22.0")


def test_compose_has_a_gpu_and_a_cpu_profile():
    compose = yaml.safe_load((REPO_ROOT / "docker" / "compose.yaml").read_text())
    assert compose["name"] == "poseserve"  # Compose v2
    services = compose["services"]
    targets = set(stages())
    for svc in services.values():
        assert svc["build"]["target"] in targets
    assert "profiles" not in services["prepare"]
    gpu, cpu = services["pose"], services["pose-cpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["target"] == "serve"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert cpu["profiles"] == ["cpu"] and cpu["build"]["target"] == "serve-cpu" and "deploy" not in cpu
    assert "CUDA" not in cpu["environment"]["POSE_PROVIDERS"]
    for svc in (gpu, cpu):
        assert svc["depends_on"]["prepare"]["condition"] == "service_completed_successfully"
        assert svc["volumes"] == ["models:/models"]
        # published on the host's loopback unless POSE_BIND says otherwise (no open port without API keys)
        assert svc["ports"] == ["${POSE_BIND:-127.0.0.1}:${POSE_PORT:-8000}:8000"]
    # compose resolves relative paths against the compose file's folder (docker/): every build context is the
    # repository root, where the Dockerfile is
    for svc in services.values():
        context = (REPO_ROOT / "docker" / svc["build"]["context"]).resolve()
        assert context == REPO_ROOT.resolve() and (context / svc["build"]["dockerfile"]).is_file()


def test_the_gpu_image_can_build_its_own_tensorrt_engines():
    """Issue 21, defect 1: compose passes WITH_TENSORRT to the serve build, a one-shot `engines` service builds the
    served models' engines with `pose-export engine --served` (torch-free: the tensorrt extra holds the lint's onnx and
    onnx-graphsurgeon, pinned in the GPU lock), and the health check's start period covers a first engine build."""
    compose = yaml.safe_load((REPO_ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("pose", "engines"):
        assert services[name]["build"]["target"] == "serve"
        assert services[name]["build"]["args"]["WITH_TENSORRT"] == "${WITH_TENSORRT:-0}"
    assert services["pose"]["environment"]["POSE_RUNTIME"] == "${POSE_RUNTIME:-onnxruntime}"
    engines = services["engines"]
    assert engines["command"][:3] == ["pose-export", "engine", "--served"] and engines["volumes"] == ["models:/models"]
    assert engines["profiles"] == ["engines"] and engines["deploy"]["resources"]["reservations"]["devices"]
    body = stages()["serve"][1]
    assert re.search(r'"\$WITH_TENSORRT" = "1" \]; then\s*\\\n\s*pip install -c docker/constraints/serve-gpu.txt', body)
    period = re.search(r"^HEALTHCHECK .*--start-period=(\d+)s", body, re.M)
    assert period and int(period.group(1)) >= 900  # a ResNet-50 + YOLO fp16 build: minutes
    for image in ("serve-gpu", "eval"):
        assert {"onnx", "onnx-graphsurgeon"} <= set(pins(image))
        assert not {"torch", "torchvision", "ultralytics"} & set(pins(image))
