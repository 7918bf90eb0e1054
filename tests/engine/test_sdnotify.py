"""sd_notify over real AF_UNIX datagram sockets, path and abstract namespace."""

from __future__ import annotations

import os
import socket

import pytest

from engine.ops import sdnotify


@pytest.fixture
def receiver(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    s.bind(path)
    s.settimeout(2)
    yield path, s
    s.close()


def test_notify_sends_the_state_as_one_datagram(receiver):
    path, s = receiver
    assert sdnotify.notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": path})
    assert s.recv(100) == b"READY=1\nSTATUS=up"


def test_abstract_namespace_socket():
    name = f"inspection-station-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(b"\0" + name.encode())
        s.settimeout(2)
        assert sdnotify.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert s.recv(100) == b"WATCHDOG=1"


def test_outside_systemd_or_with_nobody_listening_nothing_is_sent_and_nothing_raised(tmp_path):
    assert not sdnotify.notify("READY=1", {})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"})


def test_watchdog_interval_is_half_of_watchdog_sec_and_only_for_this_process(receiver):
    path, _ = receiver
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    assert sdnotify.watchdog_interval_s(env) == 15.0
    assert sdnotify.watchdog_interval_s({**env, "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert sdnotify.watchdog_interval_s({**env, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert sdnotify.watchdog_interval_s({**env, "WATCHDOG_USEC": "soon"}) is None
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) is None
