"""Entry point of the frozen (PyInstaller) build: the same command line as ``inspection-station``."""

import multiprocessing
import sys

from app.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
