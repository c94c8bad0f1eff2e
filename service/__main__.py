"""``python -m service`` == ``pose-serve``."""

import sys

from service.cli import main

sys.exit(main())
