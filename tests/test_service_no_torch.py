"""The serving runtime must never import torch (the serving image has no torch)."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_importing_the_service_leaves_torch_out():
    code = (
        "import sys\n"
        "import pkgutil, importlib, service, models\n"
        "for m in pkgutil.iter_modules(service.__path__): m.name != '__main__' and importlib.import_module('service.' + m.name)\n"
        "for m in ('keypoints', 'geometry', 'codecs', 'card', 'zoo', 'tolerance'): importlib.import_module('models.' + m)\n"
        "app = service.app.create_app()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'torchvision')\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
