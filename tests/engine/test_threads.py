"""The engine's OpenMP wait policy: passive unless the environment chose, and in place before torch loads."""

from __future__ import annotations

import subprocess
import sys

from engine.runtime.threads import DEFAULT_WAIT_POLICY, apply


def test_passive_waiting_is_set_unless_the_environment_chose():
    env: dict[str, str] = {}
    assert apply(env).startswith("OMP_WAIT_POLICY=PASSIVE") and env == {"OMP_WAIT_POLICY": DEFAULT_WAIT_POLICY}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert "from the environment" in apply(env) and env == {"OMP_WAIT_POLICY": "ACTIVE"}
    env = {"GOMP_SPINCOUNT": "1000"}
    assert apply(env).startswith("GOMP_SPINCOUNT=1000") and env == {"GOMP_SPINCOUNT": "1000"}


def test_the_station_sets_it_before_torch_is_loaded():
    """In a fresh process, as the CLI starts: the policy is in the environment by the time torch loads."""
    code = ("import os, sys; import app.cli; import engine.inference; "
            "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "PASSIVE"]
    code = "import engine.runtime.threads as t; print(t.POLICY)"
    late = subprocess.run([sys.executable, "-c", "import torch; " + code], env=env, capture_output=True, text=True,
                          check=True).stdout
    assert "torch was loaded before the engine" in late
