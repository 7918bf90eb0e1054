"""The GPU backend of the frame statistics: CuPy launching the raw CUDA kernels of ``engine/monitoring/kernels/stats.cu``.

The definitions are :mod:`engine.monitoring.stats`'s, computed on a batch of frames in two launches (the kernel file says
what each reads and writes): one pass over the pixels for the luma plane, the four histograms, the grid sums,
the grid cells' luma histograms and the Immerkaer Laplacian sum; one over the luma plane for the two Gaussian
bands and their masked energies. Only the accumulators (9284 64-bit words per frame, about 74 KB, most of it the
64 cells' 256-bin histograms as 32-bit counts) come back to the host, where
:func:`engine.monitoring.stats.scalars_from_parts`, :func:`engine.monitoring.stats.focus_from_energies` and
:func:`engine.monitoring.stats.medians_from_cell_hists` make the named figures, so every definition stays in one place. The
histograms, the grid, the cell medians and the noise are exactly the CPU backend's; the focus figure agrees to
a few parts in a million (float blurs summed in a different order can put a pixel at the mask's threshold on the
other side; the tests allow 1e-4).

The kernels are compiled with NVRTC on first use (a fraction of a second); CuPy keeps compiled kernels in its
on-disk cache (``~/.cupy/kernel_cache``, or ``CUPY_CACHE_DIR``), so later runs load them from there.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import StationError
from engine.monitoring.stats import FrameStats, focus_from_energies, grid_bounds, medians_from_cell_hists, scalars_from_parts

KERNEL_FILE = Path(__file__).with_name("kernels") / "stats.cu"

# The accumulator layout of one frame, as in the kernel file (a test checks they agree).
ACC_HIST = 0
ACC_GRID = 1024
ACC_LAP = 1088
ACC_COUNT = 1089
ACC_EF = 1090
ACC_EC = 1091
ACC_CELL = 1092  # 64 x 256 uint32 cell histograms, two to a word: 8192 words
ACC_STRIDE = 9284
TILE = 32
BLOCK = (32, 8, 1)
MAX_BATCH = 65535  # the grid's z dimension: larger batches go in several launches

_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged


class GpuUnavailableError(StationError):
    """The GPU backend cannot run here; the message says why in one sentence."""


def gpu_status() -> tuple[bool, str]:
    """Whether the GPU backend can run here (CuPy importable, a CUDA device present), and in words why not or
    which device it would use."""
    try:
        import cupy
    except ImportError:
        return False, "CuPy is not installed: pip install 'inspection-station[gpu]'"
    except Exception as e:  # noqa: BLE001 - a broken CUDA installation fails at import, in many ways
        return False, f"CuPy cannot be loaded: {_short(e)}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no driver, an old driver: CUDARuntimeError and others
        return False, f"no usable CUDA device: {_short(e)}"
    if count < 1:
        return False, "no CUDA device"
    try:
        dev = cupy.cuda.runtime.getDevice()
        name = cupy.cuda.runtime.getDeviceProperties(dev)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception as e:  # noqa: BLE001 - as above
        return False, f"the CUDA device cannot be queried: {_short(e)}"
    return True, f"{name} (CUDA device {dev}, CuPy {cupy.__version__})"


def _short(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def kernel_source() -> str:
    """The CUDA source of the kernels (shipped as package data)."""
    return KERNEL_FILE.read_text(encoding="utf-8")


def stats_from_accumulators(acc: np.ndarray, height: int, width: int) -> FrameStats:
    """One frame's statistics from its accumulator row (``ACC_STRIDE`` uint64 words, the kernels' layout)."""
    acc = np.ascontiguousarray(acc, dtype=np.uint64)
    cell_hist = cell_hists_from_accumulators(acc)
    hist = acc[ACC_HIST:ACC_HIST + 1024].astype(np.int64).reshape(4, 256)
    rb, cb = grid_bounds(height), grid_bounds(width)
    area = np.outer(np.diff(rb), np.diff(cb)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # frames under 8 pixels a side have empty cells
        grid = acc[ACC_GRID:ACC_GRID + 64].astype(np.float64).reshape(8, 8) / area
    if height < 3 or width < 3:
        noise = 0.0
    else:
        noise = math.sqrt(math.pi / 2) * float(acc[ACC_LAP]) / (6.0 * (width - 2) * (height - 2))
    count = int(acc[ACC_COUNT])
    if count:
        ef, ec = acc[ACC_EF:ACC_EC + 1].view(np.float64)
        focus = focus_from_energies(float(ef) / count, float(ec) / count, noise)
    else:
        focus = 0.0
    return FrameStats(scalars_from_parts(hist, grid, noise, focus), hist, grid,
                      cell_median=medians_from_cell_hists(cell_hist))


def cell_hists_from_accumulators(acc: np.ndarray) -> np.ndarray:
    """The grid cells' luma histograms, (8, 8, 256) int64, from one frame's accumulator row: the kernels store
    them as 32-bit counts, two to a 64-bit word in memory order."""
    words = np.ascontiguousarray(acc[ACC_CELL:ACC_CELL + 64 * 256 // 2], dtype=np.uint64)
    return words.view(np.uint32).astype(np.int64).reshape(8, 8, 256)


class GpuStats:
    """The statistics of batches of frames on the current CUDA device.

    ``stats_batch`` takes (N, H, W, 3) or (H, W, 3) BGR uint8 frames as a NumPy array (uploaded), a CuPy
    array, or any object with ``__dlpack__`` / ``__cuda_array_interface__`` such as a torch CUDA tensor: frames
    already on the device are used where they are, neither copied to the host nor duplicated on the device.
    Thread-safe; one instance can serve several threads.
    """

    def __init__(self) -> None:
        ok, why = gpu_status()
        if not ok:
            raise GpuUnavailableError(f"the GPU statistics backend cannot run: {why}")
        import cupy

        self._cp = cupy
        self._lock = threading.Lock()
        self._modules: dict[int, tuple[Any, Any]] = {}  # the two kernels, per device

    def _kernels(self) -> tuple[Any, Any]:
        dev = self._cp.cuda.Device().id
        with self._lock:
            kernels = self._modules.get(dev)
            if kernels is None:
                # NVRTC, C++17, for this device's architecture; compiled on first use and kept in CuPy's on-disk
                # kernel cache. CuPy adds -ftz=true: no value here comes near float's denormal range.
                module = self._cp.RawModule(code=kernel_source(), options=("--std=c++17",))
                kernels = module.get_function("frame_stats_pixels"), module.get_function("frame_stats_focus")
                self._modules[dev] = kernels
        return kernels

    def device_frames(self, frames: Any) -> Any:
        """The frames as a contiguous (N, H, W, 3) uint8 CuPy array: device memory as it is, host memory uploaded."""
        cp = self._cp
        if isinstance(frames, cp.ndarray):
            arr = frames
        elif isinstance(frames, np.ndarray):
            arr = cp.asarray(np.ascontiguousarray(frames))
        elif hasattr(frames, "__dlpack__") and _dlpack_device(frames) in _DLPACK_CUDA:
            arr = cp.from_dlpack(frames)
        elif hasattr(frames, "__cuda_array_interface__"):
            arr = cp.asarray(frames)
        else:
            arr = cp.asarray(np.ascontiguousarray(np.asarray(frames)))
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[3] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) or (H, W, 3) BGR images, not of shape {tuple(arr.shape)}")
        if arr.dtype != cp.uint8:
            raise ValueError(f"frames must be uint8, not {arr.dtype}")
        if not arr.flags.c_contiguous:
            raise ValueError("frames on the GPU must be C-contiguous (N, H, W, 3): they are not copied")
        if arr.shape[1] < 1 or arr.shape[2] < 1:
            raise ValueError("frames must have at least one pixel")
        return arr

    def accumulate(self, frames: Any) -> Any:
        """Launch the kernels on the current stream; the (N, ACC_STRIDE) uint64 accumulators, on the device
        (asynchronous: nothing waits for the GPU here)."""
        cp = self._cp
        arr = self.device_frames(frames)
        with arr.device:
            pixels, focus = self._kernels()
            n, h, w = (int(v) for v in arr.shape[:3])
            acc = cp.zeros((n, ACC_STRIDE), cp.uint64)
            luma = cp.empty((min(n, MAX_BATCH), h, w), cp.uint8)
            blocks_x, blocks_y = -(-w // TILE), -(-h // TILE)
            for start in range(0, n, MAX_BATCH):
                part = min(MAX_BATCH, n - start)
                grid = (blocks_x, blocks_y, part)
                args_h, args_w = np.int32(h), np.int32(w)
                pixels(grid, BLOCK, (arr[start:start + part], luma, acc[start:start + part], args_h, args_w))
                focus(grid, BLOCK, (luma, acc[start:start + part], args_h, args_w))
        return acc

    def warm_up(self) -> None:
        """Compile the kernels (or load them from CuPy's cache) and run them once on a small frame, so that a
        device or compiler that cannot do the work fails here rather than on the first frame."""
        self.stats_batch(np.zeros((1, 8, 8, 3), np.uint8))

    def stats_batch(self, frames: Any) -> list[FrameStats]:
        """The statistics of each frame of the batch; only the accumulators are copied back."""
        arr = self.device_frames(frames)
        h, w = int(arr.shape[1]), int(arr.shape[2])
        acc = self._cp.asnumpy(self.accumulate(arr))  # waits for the kernels
        return [stats_from_accumulators(row, h, w) for row in acc]


def _dlpack_device(obj: Any) -> int | None:
    try:
        return int(obj.__dlpack_device__()[0])
    except Exception:  # noqa: BLE001 - an object that only claims the protocol is read another way
        return None


_default: GpuStats | None = None
_default_lock = threading.Lock()


def default_gpu_stats() -> GpuStats:
    """The process's shared :class:`GpuStats` (made on first use; raises :class:`GpuUnavailableError`)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = GpuStats()
        return _default


def gpu_stats(bgr: Any) -> FrameStats:
    """The statistics of one BGR uint8 frame on the GPU (the measurers' single-frame function)."""
    stats = default_gpu_stats().stats_batch(bgr)
    if len(stats) != 1:
        raise ValueError(f"one frame expected, got a batch of {len(stats)}")
    return stats[0]
