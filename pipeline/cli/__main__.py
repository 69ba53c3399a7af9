"""``python -m pipeline.cli``: the same as ``biosig-edge``."""

import sys

from pipeline.cli import main

sys.exit(main())
