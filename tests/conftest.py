"""Shared test set-up: offscreen Qt, a fresh data directory per test, and no thread left behind."""

from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import engine.runtime.threads  # noqa: E402,F401 - the station's OpenMP wait policy before any test module loads torch


def _cuda_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CuPy")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def no_threads_left_behind():
    """Every pipeline, grabber, writer or worker thread a test starts must have finished when it ends."""
    before = set(threading.enumerate())
    yield
    deadline = 5.0
    for t in set(threading.enumerate()) - before:
        if t.name.startswith(("pipeline", "grab-", "trend-writer", "feedback-writer", "recalibration-worker", "report-",
                              "bundle-preview", "bundle-export")):
            t.join(deadline)
            assert not t.is_alive(), f"thread {t.name} still running after the test"


SMALL_SIM = "sim://?seed=1&scenario=nominal&width=320&height=256"
