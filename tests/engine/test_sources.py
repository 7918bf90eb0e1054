import socket
import threading
import time

import cv2
import numpy as np
import pytest

from engine.sources import (
    FolderSource,
    FrameError,
    LiveCaptureSource,
    SimSource,
    SourceEnded,
    SourceError,
    SourceNotFound,
    SourceStalled,
    VideoFileSource,
    open_source,
)
from engine.sources.opencv import open_stream


def write_video(path, n=24, size=(160, 120)):
    """A real MJPG video whose brightness rises frame by frame, so order can be checked after decoding."""
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    assert out.isOpened()
    for i in range(n):
        out.write(np.full((h, w, 3), int(i * 240 / max(1, n - 1)), np.uint8))
    out.release()
    return path


def test_video_file_delivers_every_frame_in_order_then_ends(tmp_path):
    path = write_video(tmp_path / "line.avi")
    for uri in (str(path), f"file://{path}"):
        src = open_source(uri)
        assert isinstance(src, VideoFileSource) and not src.live
        with src:
            frames = []
            with pytest.raises(SourceEnded):
                while True:
                    frames.append(src.read())
        assert [f.sequence for f in frames] == list(range(24))
        levels = [float(f.image.mean()) for f in frames]
        assert levels == sorted(levels) and levels[-1] - levels[0] > 200
        assert all(f.channel_order == "BGR" and f.image.shape == (120, 160, 3) for f in frames)


def test_video_file_loops_when_asked(tmp_path):
    path = write_video(tmp_path / "line.avi", n=5)
    with open_source(f"file://{path}?loop=1") as src:
        seqs = [src.read().sequence for _ in range(12)]
    assert seqs == list(range(12))


def test_missing_or_unreadable_video_is_one_clear_sentence(tmp_path):
    with pytest.raises(SourceNotFound, match="does not exist"):
        open_source(str(tmp_path / "nope.mp4")).open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceNotFound, match="not a video file"):
        open_source(str(junk)).open()


def test_folder_reads_images_in_name_order_and_skips_a_bad_one(tmp_path):
    for name, level in (("b.png", 20), ("a.png", 10), ("c.jpg", 30)):
        cv2.imwrite(str(tmp_path / name), np.full((40, 50, 3), level, np.uint8))
    (tmp_path / "bb.png").write_bytes(b"broken")
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(f"folder://{tmp_path}")
    assert isinstance(src, FolderSource)
    with src:
        got = [int(src.read().image.mean())]
        got.append(int(src.read().image.mean()))
        with pytest.raises(FrameError, match="bb.png"):
            src.read()
        got.append(round(src.read().image.mean()))
        with pytest.raises(SourceEnded):
            src.read()
    assert got == [10, 20, 30]


def test_folder_loops_and_reports_empty_or_missing(tmp_path):
    cv2.imwrite(str(tmp_path / "only.png"), np.zeros((8, 8, 3), np.uint8))
    with open_source(f"folder://{tmp_path}?loop=1") as src:
        assert [src.read().sequence for _ in range(3)] == [0, 1, 2]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceNotFound, match="holds no images"):
        open_source(f"folder://{empty}").open()
    with pytest.raises(SourceNotFound, match="does not exist"):
        open_source(f"folder://{tmp_path}/missing").open()


def test_grey_and_16_bit_images_become_bgr_uint8(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((10, 12), 7, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((10, 12), 256 * 9, np.uint16))
    with open_source(f"folder://{tmp_path}") as src:
        a, b = src.read(), src.read()
    assert a.image.shape == b.image.shape == (10, 12, 3)
    assert a.image.dtype == np.uint8 and int(a.image[0, 0, 0]) == 7 and int(b.image[0, 0, 0]) == 9


@pytest.mark.parametrize("uri, message", [
    ("bogus://x", "unknown source type"),
    ("cam://front", "cam://INDEX"),
    ("sim://?scenario=sunny", "unknown scenario"),
    ("sim://?seed=abc", "not a valid int"),
    ("sim://?colour=red", "unknown sim:// parameter"),
    ("sim://?show=cat", "can show"),
    ("sim://?dt=nan", "dt must be above 0"),
    ("sim://?dt=-1", "dt must be above 0"),
    ("sim://?fps=inf", "fps must be above 0"),
    ("sim://?fps=0", "fps must be above 0"),
    ("sim://?seed=-1", "seed must be between 0"),
    ("sim://?width=20", "width must be between 64 and 8192"),
    ("sim://?start=-5", "start must be between 0"),
    ("folder:///tmp?speed=2", "unknown parameter"),
    ("", "no source"),
])
def test_bad_uris_are_refused_in_one_sentence(uri, message):
    with pytest.raises(SourceNotFound, match=message):
        open_source(uri).open()


def test_every_numeric_sim_parameter_has_a_range():
    from engine.core.config import ranges

    assert set(ranges()["uri.sim"]) == {"seed", "width", "height", "fps", "dt", "start"}


def test_sim_uri_parameters_reach_the_simulator():
    src = open_source("sim://?seed=5&scenario=lens-change&width=200&height=100&fps=12&dt=30&start=7")
    assert isinstance(src, SimSource)
    with src:
        f = src.read()
    assert f.image.shape == (100, 200, 3)
    assert f.sequence == 7 and src.sim.dt == 30 and src.nominal_fps == 12
    assert f.ground_truth.conditions["scenario"] == "lens-change"
    assert not src.live and open_source("sim://?realtime=1").live


def test_paced_sim_follows_the_clock_and_skips_what_a_slow_reader_misses():
    src = open_source("sim://?width=64&height=64&fps=100", realtime=True)
    with src:
        first = src.read()
        time.sleep(0.2)
        later = src.read()
    assert later.sequence - first.sequence >= 10  # frames kept coming while nobody read


def test_sim_shows_the_target_on_request_for_a_number_of_frames():
    with open_source("sim://?width=320&height=256") as src:
        src.request("checkerboard", frames=2)
        shown = [src.read().ground_truth.conditions["show"] for _ in range(3)]
    assert shown == ["checkerboard", "checkerboard", "production"]


def test_live_capture_keeps_only_the_newest_frame_and_reports_the_end(tmp_path):
    """The grabber thread over a real OpenCV capture: a slow reader gets the newest frame, never a backlog."""
    path = write_video(tmp_path / "cam.avi", n=60)
    src = LiveCaptureSource(str(path), uri=f"test://{path.name}", source_id="cam:test")
    with src:
        first = src.read(timeout=5)
        time.sleep(0.5)  # the grabber runs through the rest of the file meanwhile
        with pytest.raises(SourceError, match="stopped delivering"):
            while True:
                src.read(timeout=5)
    assert first.sequence >= 1


class _SilentServer:
    """A TCP server on loopback that accepts connections and never says a word: a dead stream."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_dead_stream_cannot_block_forever():
    server = _SilentServer()
    try:
        src = open_stream(f"rtsp://user:secret@127.0.0.1:{server.port}/line", timeout_ms=1500)
        assert "secret" not in src.uri
        t0 = time.monotonic()
        with pytest.raises(SourceNotFound, match="cannot be opened"):
            src.open()
        assert time.monotonic() - t0 < 30  # bounded by the open timeout, not forever
    finally:
        server.close()


def test_a_stalled_live_source_times_out_on_read():
    """A capture that opened but then never delivers again: read gives up after its timeout."""
    src = LiveCaptureSource(0, uri="cam://0", source_id="cam:0")
    src._cap = object()  # opened as far as read() can tell, with a grabber that never delivers
    t0 = time.monotonic()
    with pytest.raises(SourceStalled, match="no frame within 0.3 s"):
        src.read(timeout=0.3)
    assert time.monotonic() - t0 < 5
