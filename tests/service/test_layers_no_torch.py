"""The server and the engine must never import torch (the serving image has no torch); the engine and the core never
import the HTTP stack."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_importing_the_service_leaves_torch_out():
    """Every module of ``service``, ``inference`` and ``core`` and the torch-free ``models`` modules, imported in a
    fresh interpreter, and the app built: no torch in ``sys.modules``."""
    code = (
        "import sys\n"
        "import pkgutil, importlib, service, inference, core, models\n"
        "for pkg in (service, inference, core):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__): m.name != '__main__' and importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "for m in ('scoring',): importlib.import_module('models.' + m)\n"
        "for m in ('keypoints', 'geometry', 'codecs', 'card', 'zoo', 'tolerance'): importlib.import_module('models.' + m)\n"
        "app = service.app.create_app()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'torchvision')\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_importing_inference_and_core_leaves_torch_and_the_http_stack_out():
    """The engine and the Python API are HTTP-free: evaluation, quantisation, batch runners and ``poseserve``'s users
    run it without FastAPI, Starlette, uvicorn or torch."""
    code = (
        "import sys, pkgutil, importlib, inference, core, poseserve\n"
        "for pkg in (inference, core, poseserve):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__): importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'fastapi', 'starlette', 'uvicorn'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_training_package_imports_without_the_serving_stack():
    """``pip install .[train]`` has no onnxruntime, OpenVINO, Pillow, FastAPI or uvicorn: ``pose-train`` and its
    modules must import with every one of them missing (an import hook refuses them here)."""
    code = (
        "import sys, importlib, importlib.abc, pkgutil\n"
        "SERVING = ('onnxruntime', 'openvino', 'PIL', 'fastapi', 'uvicorn', 'starlette', 'prometheus_client')\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in SERVING: raise ImportError(f'{name} is not in the train extra')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import training\n"
        "for m in pkgutil.iter_modules(training.__path__): importlib.import_module('training.' + m.name)\n"
        "import training.train\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in SERVING)\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
