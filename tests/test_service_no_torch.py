"""The serving runtime must never import torch (the serving image has no torch)."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_importing_the_service_leaves_torch_out():
    code = (
        "import sys\n"
        "import service, service.app, service.cli, service.pipeline, service.pose, service.detector\n"
        "import service.runtime, service.imageio, service.batcher, service.render, service.settings\n"
        "import service.defaults, service.runtime_trt, service.scoring, models.zoo, models.codecs, models.card\n"
        "app = service.app.create_app()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'torchvision')\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
