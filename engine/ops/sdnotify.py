"""systemd's service notification protocol (``sd_notify``), with the standard library only.

A service started with ``Type=notify`` finds the path of a datagram socket in ``NOTIFY_SOCKET``
and sends it newline-separated ``KEY=VALUE`` assignments: ``READY=1`` once it is up,
``WATCHDOG=1`` at least every ``WatchdogSec`` while it is healthy, ``STOPPING=1`` when it shuts
down, ``STATUS=...`` for ``systemctl status``. A path starting with ``@`` names a socket in
the abstract namespace. Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing and
returns ``False``; a notification that cannot be delivered is never an error for the caller.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["notify", "notify_socket_address", "watchdog_interval_s"]


def notify_socket_address(environ: Mapping[str, str] | None = None) -> str | bytes | None:
    """The address to send notifications to, or ``None`` when not started by systemd (or by a
    systemd whose socket is not a Unix one, such as ``vsock:``)."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path or not (path.startswith("/") or path.startswith("@")):
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (for example ``"READY=1"`` or ``"WATCHDOG=1"``); ``True`` when it was sent."""
    address = notify_socket_address(environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), address)
    except OSError:
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half the service's ``WatchdogSec``, as systemd advises;
    ``None`` when no watchdog is asked of this process (``WATCHDOG_USEC`` unset or invalid, or
    ``WATCHDOG_PID`` naming another process)."""
    env = os.environ if environ is None else environ
    if notify_socket_address(env) is None:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2e6
