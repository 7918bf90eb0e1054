"""Entry point of the frozen (PyInstaller) build: the same command line as ``inspection-station``."""

import multiprocessing
import sys

from app.cli import main

TRAIN_JOB = ["-m", "engine.inference.train_job"]  # how the window starts a training run (app/gui/training.py)

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if sys.argv[1:3] == TRAIN_JOB:  # the frozen program is its own Python: the window's training child
        from engine.inference import train_job

        sys.exit(train_job.main(sys.argv[3:]))
    sys.exit(main())
