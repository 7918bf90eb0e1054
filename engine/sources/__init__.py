"""Frame sources, opened from a URI.

=================================================  ===========================================
``sim://?seed=N&scenario=NAME&width=W&height=H``    the simulated production line
``cam://INDEX``                                     a USB camera through OpenCV
``PATH`` or ``file://PATH`` (``?loop=1``)           a video file
``folder://PATH`` (``?loop=1``)                     images in a folder, in name order
``rtsp://...``, ``http(s)://...``                   a network stream, with open/read timeouts
=================================================  ===========================================
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from engine.sources.base import REAL_CLOCK, Clock, FrameSource, SourceEnded, SourceError, SourceNotFound, SourceStalled
from engine.sources.opencv import FolderSource, FrameError, LiveCaptureSource, VideoFileSource, open_camera, open_stream
from engine.sources.sim import SimSource, open_sim

__all__ = ["REAL_CLOCK", "Clock", "FolderSource", "FrameError", "FrameSource", "LiveCaptureSource", "SimSource",
           "SourceEnded", "SourceError", "SourceNotFound", "SourceStalled", "VideoFileSource", "open_source"]

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")


def _split_query(rest: str) -> tuple[str, dict[str, str]]:
    path, _, query = rest.partition("?")
    return path, {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _loop(q: dict[str, str], uri: str) -> bool:
    unknown = sorted(set(q) - {"loop"})
    if unknown:
        raise SourceNotFound(f"unknown parameter {unknown[0]!r} in {uri}; only 'loop' is known")
    return q.get("loop", "0").lower() in ("1", "true", "yes", "on")


def open_source(uri: str, realtime: bool = False) -> FrameSource:
    """The source a URI names, not yet opened. ``realtime`` paces ``sim://`` unless it says otherwise.

    Raises :class:`SourceNotFound` with one clear sentence for a URI it cannot use.
    """
    uri = uri.strip()
    if not uri:
        raise SourceNotFound("no source given")
    if uri.startswith("sim://") or uri == "sim:":
        return open_sim(uri, realtime=realtime)
    if uri.startswith("cam://"):
        index = uri[len("cam://"):].split("?", 1)[0]
        if not index.isdigit():
            raise SourceNotFound(f"camera URI {uri!r} must be cam://INDEX with a number, e.g. cam://0")
        return open_camera(int(index))
    if uri.startswith(STREAM_SCHEMES):
        return open_stream(uri)
    if uri.startswith("folder://"):
        path, q = _split_query(uri[len("folder://"):])
        return FolderSource(Path(path).expanduser(), loop=_loop(q, uri), uri=uri)
    if uri.startswith("file://"):
        path, q = _split_query(uri[len("file://"):])
        return VideoFileSource(Path(path).expanduser(), loop=_loop(q, uri), uri=uri)
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise SourceNotFound(f"unknown source type {scheme}://; use sim://, cam://, file://, folder:// or rtsp://")
    path = Path(uri).expanduser()
    if path.is_dir():
        return FolderSource(path, uri=uri)
    return VideoFileSource(path, uri=uri)
