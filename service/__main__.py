"""``python -m service`` == ``pose-serve``."""

import sys

from service.pose_serve import main

sys.exit(main())
