"""Sources read through OpenCV: video files, USB cameras, network streams; and image folders."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own console chatter; errors are ours to say
import cv2  # noqa: E402
import numpy as np  # noqa: E402

# OpenCV's warnings ("can't open camera by index") are said once, as our own sentence.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

from engine.core.frame import Frame, as_frame_image
from engine.sources.base import FrameSource, SourceEnded, SourceError, SourceNotFound, SourceStalled


class FrameError(SourceError):
    """One frame could not be decoded; the source itself is still usable."""


class VideoFileSource(FrameSource):
    """A video file read frame by frame; every frame is delivered (not live)."""

    def __init__(self, path: str | os.PathLike, loop: bool = False, uri: str | None = None) -> None:
        self.path = Path(path)
        self.loop = loop
        self.uri = uri or str(self.path)
        self.source_id = f"file:{self.path.name}"
        self.live = False
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._t_open = 0.0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceNotFound(f"video file {self.path} does not exist")
        self.close()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceNotFound(f"{self.path} is not a video file OpenCV can read")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and fps > 0 else None
        self._t_open = time.time()
        # Reopening after a failure continues where reading stopped.
        if self._index:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self._index)

    def read(self, timeout: float = 2.0) -> Frame:
        if self._cap is None:
            raise SourceError(f"video file {self.path} is not open")
        ok, image = self._cap.read()
        if not ok and self.loop and self._index > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceEnded(f"video file {self.path} has no more frames after {self._index}")
        pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        seq = self._index
        self._index += 1
        return Frame(as_frame_image(image), "BGR", seq, self._t_open + pos_ms / 1000.0, self.source_id)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource(FrameSource):
    """Images in a folder, in name order; optionally looping. Not live."""

    EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
    detect_frozen = False

    def __init__(self, path: str | os.PathLike, loop: bool = False, uri: str | None = None) -> None:
        self.path = Path(path)
        self.loop = loop
        self.uri = uri or f"folder://{self.path}"
        self.source_id = f"folder:{self.path.name}"
        self.live = False
        self._files: list[Path] = []
        self._index = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceNotFound(f"image folder {self.path} does not exist")
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in self.EXTENSIONS)
        if not self._files:
            raise SourceNotFound(f"image folder {self.path} holds no images ({', '.join(self.EXTENSIONS)})")

    def read(self, timeout: float = 2.0) -> Frame:
        if not self._files:
            raise SourceError(f"image folder {self.path} is not open")
        i = self._index
        if i >= len(self._files):
            if not self.loop:
                raise SourceEnded(f"image folder {self.path}: all {len(self._files)} images read")
            i = i % len(self._files)
        self._index += 1
        path = self._files[i % len(self._files)]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise FrameError(f"cannot decode image {path.name}")
        try:
            image = as_frame_image(image)
        except ValueError as e:
            raise FrameError(f"image {path.name}: {e}") from None
        return Frame(image, "BGR", self._index - 1, path.stat().st_mtime, self.source_id)

    def close(self) -> None:
        pass


class LiveCaptureSource(FrameSource):
    """A camera or network stream. A grabber thread keeps only the newest frame.

    ``read`` waits at most ``timeout`` for a frame newer than the last one it
    returned, so a stream that stalls, or a driver stuck inside a blocking read,
    cannot hold up the caller.
    """

    def __init__(self, target: int | str, uri: str, source_id: str, api: int = cv2.CAP_ANY,
                 params: list[int] | None = None, what: str = "camera") -> None:
        self.target = target
        self.uri = uri
        self.source_id = source_id
        self.live = True
        self.api = api
        self.params = params or []
        self.what = what
        self._cap: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._delivered = -1
        self._grab_error: str | None = None
        self._seq = 0

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.target, self.api, self.params) if self.params else cv2.VideoCapture(
            self.target, self.api)
        if not cap.isOpened():
            cap.release()
            raise SourceNotFound(f"{self.what} {self.uri} cannot be opened (not connected, or in use)")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and 0 < fps < 1000 else None
        self._stop = threading.Event()
        self._grab_error = None
        self._thread = threading.Thread(target=self._grab, args=(cap, self._stop), daemon=True,
                                        name=f"grab-{self.source_id}")
        self._thread.start()

    def _grab(self, cap: cv2.VideoCapture, stop: threading.Event) -> None:
        while not stop.is_set():
            ok, image = cap.read()
            if stop.is_set():
                break
            if not ok or image is None:
                with self._cond:
                    self._grab_error = f"{self.what} {self.uri} stopped delivering frames"
                    self._cond.notify_all()
                break
            with self._cond:
                self._seq += 1
                self._latest = (self._seq, time.time(), image)
                self._cond.notify_all()

    def read(self, timeout: float = 2.0) -> Frame:
        if self._cap is None:
            raise SourceError(f"{self.what} {self.uri} is not open")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest[0] <= self._delivered:
                if self._grab_error:
                    raise SourceError(self._grab_error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SourceStalled(f"{self.what} {self.uri} delivered no frame within {timeout:g} s")
                self._cond.wait(left)
            seq, stamp, image = self._latest
            self._delivered = seq
        return Frame(as_frame_image(image), "BGR", seq, stamp, self.source_id)

    def close(self) -> None:
        self._stop.set()
        cap, self._cap = self._cap, None
        thread, self._thread = self._thread, None
        if thread is not None:
            # A driver stuck in a blocking read is left to its daemon thread rather than hang the caller.
            thread.join(timeout=1.0)
        if cap is not None and (thread is None or not thread.is_alive()):
            cap.release()


def open_camera(index: int) -> LiveCaptureSource:
    api = cv2.CAP_V4L2 if os.name == "posix" and os.path.exists("/dev") else cv2.CAP_ANY
    return LiveCaptureSource(index, f"cam://{index}", f"cam:{index}", api=api, what="camera")


def open_stream(url: str, timeout_ms: int = 5000) -> LiveCaptureSource:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    shown = re.sub(r"//[^@/]+@", "//***@", url)  # never print a stream's password
    return LiveCaptureSource(url, shown, f"stream:{host}", api=cv2.CAP_FFMPEG, params=params, what="stream")
