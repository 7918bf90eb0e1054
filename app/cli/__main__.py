"""``python -m app.cli``: the same as the ``inspection-station`` command."""

import sys

from app.cli import main

sys.exit(main())
