"""The GPU statistics backend (engine/monitoring/gpu_stats.py, engine/monitoring/kernels/stats.cu) against the CPU backend.

Tolerances: the histograms, the grid, the cell histograms and the noise come from integer sums, so they are
exactly the CPU backend's, and so is every figure computed from them (the cell medians included); the focus
figure sums float blurs in another order, which can move a pixel at the mask's threshold across it: FOCUS_REL
relative.

Tests marked ``gpu`` run the kernels on a CUDA device and are skipped without one. The others run anywhere:
the kernel file as package data, its constants against OpenCV and the Python side, an NVRTC compile for
compute_80 and compute_90 (where an NVRTC library is found), and the kernels themselves executed on the host
with a small C++ stand-in for the CUDA runtime (where a C++20 compiler is found). On the host the kernels run
one CUDA thread per OS thread, some 15 s per megapixel on two cores: the stand-in test runs frames of up
to 300 x 260 pixels (every code path of the kernels), and full-size 1279 x 1023 and 1280 x 1024 frames only with
INSPECTION_STATION_SLOW_TESTS=1 set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.monitoring import gpu_stats as gs
from engine.core.config import ConfigError, default_config, load_config
from engine.monitoring.drift import StatsMeasurer, measurers_for, stats_backend
from engine.monitoring.reference import ReferenceError
from engine.simulation.line import LineSimulator
from engine.monitoring.stats import GRID, SCALARS, FrameStats, cpu_stats, grid_bounds

FOCUS_REL = 1e-4
ROOT = Path(__file__).resolve().parents[2]
GPU_OK, GPU_WHY = gs.gpu_status()


def assert_same_stats(got: FrameStats, want: FrameStats, focus_rel: float = FOCUS_REL) -> None:
    assert np.array_equal(got.hist, want.hist)
    assert np.array_equal(got.grid, want.grid, equal_nan=True)
    assert got.cell_median is not None and want.cell_median is not None
    assert got.cell_median.shape == (GRID, GRID)
    assert np.array_equal(got.cell_median, want.cell_median, equal_nan=True)  # NaN: an empty cell
    for k in SCALARS:
        a, b = got.scalars[k], want.scalars[k]
        if k == "focus":
            assert a == pytest.approx(b, rel=focus_rel, abs=1e-9), k
        elif math.isnan(b):
            assert math.isnan(a), k
        else:
            assert a == b, k


def frames_to_check() -> dict[str, np.ndarray]:
    out = {}
    for scenario, slot in (("nominal", 5), ("lens-change", 400), ("lighting-aging", 300), ("mixed", 700)):
        out[scenario] = LineSimulator(seed=3, scenario=scenario, width=1280, height=1024).render(slot)[0]
    odd = LineSimulator(seed=4, scenario="nominal", width=1279, height=1023).render(9)[0]
    rng = np.random.default_rng(0)
    out["1279x1023"] = odd
    out["1279x1023 blurred"] = cv2.GaussianBlur(odd, (0, 0), 2.5)
    out["random 1280x1024"] = rng.integers(0, 256, (1024, 1280, 3), dtype=np.uint8)
    out["random 131x97"] = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    out["random 9x2"] = rng.integers(0, 256, (9, 2, 3), dtype=np.uint8)
    out["random 3x3"] = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
    out["white 80x64"] = np.full((64, 80, 3), 255, np.uint8)
    return out


# ------------------------------------------------------------------------------ anywhere


def test_gpu_status_gives_a_reason_when_the_backend_cannot_run():
    ok, why = gs.gpu_status()
    assert isinstance(why, str) and why and "\n" not in why
    if importlib.util.find_spec("cupy") is None:
        assert not ok and "CuPy is not installed" in why and "inspection-station[gpu]" in why
    else:
        import cupy

        try:
            devices = cupy.cuda.runtime.getDeviceCount()
        except Exception:  # noqa: BLE001 - no driver: CuPy's CUDA errors
            devices = 0
        assert ok == (devices > 0)


@pytest.mark.skipif(GPU_OK, reason="a GPU is present")
def test_asking_for_the_gpu_without_one_is_a_one_sentence_error(tmp_path, capsys):
    config = default_config()
    config["drift"]["backend"] = "gpu"
    config["drift"]["reference"] = ""
    with pytest.raises(ReferenceError) as e:
        measurers_for(config)
    assert str(e.value) == f'[drift] backend is "gpu" but {GPU_WHY}' and "\n" not in str(e.value)
    with pytest.raises(gs.GpuUnavailableError, match="cannot run"):
        gs.GpuStats()
    # From the command line: one line on stderr, exit status 2, no traceback.
    from app.cli import main

    cfg = tmp_path / "config.toml"
    cfg.write_text('[drift]\nbackend = "gpu"\n')
    code = main(["run", "--headless", "--source", "sim://?width=160&height=128", "--frames", "2", "--model", "none",
                 "--config", str(cfg), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'backend is "gpu" but' in err and "Traceback" not in err


@pytest.mark.skipif(GPU_OK, reason="a GPU is present")
def test_auto_and_cpu_use_the_cpu_without_a_gpu():
    assert stats_backend("auto") == ("cpu", cpu_stats)
    assert stats_backend("cpu") == ("cpu", cpu_stats)
    config = default_config()
    assert config["drift"]["backend"] == "auto"
    config["drift"]["reference"] = ""
    (m,) = measurers_for(config)
    assert isinstance(m, StatsMeasurer) and m.backend == "cpu" and m.stats_fn is cpu_stats
    with pytest.raises(ReferenceError, match="must be one of"):
        stats_backend("tpu")


def test_the_config_accepts_the_three_backends_only(tmp_path):
    for word in ("auto", "cpu", "gpu"):
        (tmp_path / "c.toml").write_text(f'[drift]\nbackend = "{word}"\n')
        assert load_config(tmp_path / "c.toml")["drift"]["backend"] == word
    (tmp_path / "c.toml").write_text('[drift]\nbackend = "tpu"\n')
    with pytest.raises(ConfigError, match=r"drift\.backend must be one of 'auto', 'cpu', 'gpu', not 'tpu'"):
        load_config(tmp_path / "c.toml")


def test_the_kernel_file_is_package_data():
    assert gs.KERNEL_FILE.is_file() and "frame_stats_pixels" in gs.kernel_source()
    with open(ROOT / "pyproject.toml", "rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["engine.monitoring"]
    rel = gs.KERNEL_FILE.relative_to(ROOT / "engine" / "monitoring").as_posix()
    assert any(fnmatch(rel, g) for g in globs)


def test_the_frozen_build_ships_the_kernel_file():
    spec = (ROOT / "packaging" / "inspection-station.spec").read_text()
    found = re.search(r'collect_data_files\("engine", includes=(\[[^]]*\])\)', spec)
    assert found, "the spec collects no data files of the engine package"
    includes = [g.strip().strip("\"'") for g in found.group(1).strip("[]").split(",") if g.strip()]
    rel = gs.KERNEL_FILE.relative_to(ROOT / "engine").as_posix()
    assert any(fnmatch(rel, g) for g in includes)
    if importlib.util.find_spec("PyInstaller") is not None:  # what the build would copy, and where to
        from PyInstaller.utils.hooks import collect_data_files

        assert (str(gs.KERNEL_FILE), "engine/kernels") in collect_data_files("engine", includes=includes)


def test_the_kernel_layout_is_the_python_side_s():
    defines = dict(re.findall(r"^#define (\w+) (\d+)\b", gs.kernel_source(), re.MULTILINE))
    for name in ("ACC_HIST", "ACC_GRID", "ACC_LAP", "ACC_COUNT", "ACC_EF", "ACC_EC", "ACC_CELL", "ACC_STRIDE",
                 "TILE"):
        assert int(defines[name]) == getattr(gs, name), name
    # The 64 cells' 256 32-bit counts, two to a word, end the row.
    assert gs.ACC_CELL == gs.ACC_EC + 1 and gs.ACC_STRIDE == gs.ACC_CELL + 64 * 256 // 2
    assert (int(defines["BX"]), int(defines["BY"]), 1) == gs.BLOCK
    sqrt_half_pi = re.search(r"#define SQRT_HALF_PI ([\d.]+)", gs.kernel_source()).group(1)
    assert float(sqrt_half_pi) == math.sqrt(math.pi / 2)


def test_the_kernel_gaussian_taps_are_opencvs():
    src = gs.kernel_source()
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (61, 77)).astype(np.float32)
    for name, sigma in (("GAUSS_1", 1.0), ("GAUSS_2", 2.0)):
        body = re.search(name + r"\[R\d \+ 1\] = \{([^}]*)\}", src).group(1)
        half = np.array([float(v.strip().rstrip("f")) for v in body.split(",")], np.float32)
        taps = np.concatenate([half[:0:-1], half])
        want = cv2.getGaussianKernel(len(taps), sigma, cv2.CV_32F).ravel()
        assert np.array_equal(taps, want), name
        # ... and that is the size OpenCV picks for a float image: the blur of the definition.
        blur = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        sep = cv2.sepFilter2D(image, cv2.CV_32F, want, want, borderType=cv2.BORDER_REFLECT)
        assert np.array_equal(blur, sep), name


def test_the_grid_cell_formula_of_the_kernel_partitions_as_the_definition():
    # grid_cell(p, n) = (8 (p + 1) - 1) // n in stats.cu
    assert "(8LL * (p + 1) - 1) / n" in gs.kernel_source()
    for n in (1, 2, 7, 8, 9, 97, 255, 1023, 1024, 1279):
        p = np.arange(n)
        assert np.array_equal((8 * (p + 1) - 1) // n, np.searchsorted(grid_bounds(n), p, side="right") - 1), n


def accumulators_with_numpy(bgr: np.ndarray) -> np.ndarray:
    """What the kernels add up, computed with NumPy/OpenCV: the layout read back by stats_from_accumulators."""
    b, g, r = (bgr[:, :, i].astype(np.int64) for i in range(3))
    y = (19596 * r + 38470 * g + 7470 * b + 32768) >> 16
    h, w = y.shape
    acc = np.zeros(gs.ACC_STRIDE, np.uint64)
    for i, ch in enumerate((y, b, g, r)):
        acc[gs.ACC_HIST + 256 * i:gs.ACC_HIST + 256 * (i + 1)] = np.bincount(ch.ravel(), minlength=256)
    rb, cb = grid_bounds(h), grid_bounds(w)
    acc[gs.ACC_GRID:gs.ACC_GRID + 64] = [y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]].sum() for i in range(8) for j in range(8)]
    cells = np.array([np.bincount(y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]].ravel(), minlength=256)
                      for i in range(8) for j in range(8)], np.uint32)
    acc[gs.ACC_CELL:gs.ACC_STRIDE] = cells.ravel().view(np.uint64)
    lap = (y[:-2, :-2] - 2 * y[:-2, 1:-1] + y[:-2, 2:] - 2 * y[1:-1, :-2] + 4 * y[1:-1, 1:-1] - 2 * y[1:-1, 2:]
           + y[2:, :-2] - 2 * y[2:, 1:-1] + y[2:, 2:])
    acc[gs.ACC_LAP] = np.abs(lap).sum()
    noise = math.sqrt(math.pi / 2) * float(acc[gs.ACC_LAP]) / (6.0 * (w - 2) * (h - 2))
    yf = y.astype(np.float32)
    g1 = cv2.GaussianBlur(yf, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    g2 = cv2.GaussianBlur(yf, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    fine, coarse = yf - g1, np.abs(g1 - g2)
    mask = coarse >= np.float32(max(1.0, noise))
    acc[gs.ACC_COUNT] = mask.sum()
    acc[gs.ACC_EF:gs.ACC_EC + 1] = np.array([(fine[mask] * fine[mask]).sum(dtype=np.float64),
                                             (coarse[mask] * coarse[mask]).sum(dtype=np.float64)]).view(np.uint64)
    return acc


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # empty grid cells
def test_the_accumulators_make_the_cpu_backend_s_statistics():
    for bgr in frames_to_check().values():
        if min(bgr.shape[:2]) < 3:
            continue
        assert_same_stats(gs.stats_from_accumulators(accumulators_with_numpy(bgr), *bgr.shape[:2]), cpu_stats(bgr),
                          focus_rel=1e-6)


# ------------------------------------------------------------------------------ NVRTC compile check


def nvrtc_library() -> str | None:
    """An NVRTC shared library: $NVRTC_LIBRARY, the nvidia-cuda-nvrtc wheel, or the system's."""
    if os.environ.get("NVRTC_LIBRARY"):
        return os.environ["NVRTC_LIBRARY"]
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            found = sorted(glob.glob(os.path.join(d, "lib", "libnvrtc.so*")))
            found = [f for f in found if "builtins" not in f and ".alt." not in f]
            if found:
                return found[0]
    return ctypes.util.find_library("nvrtc")


def nvrtc_compile(library: str, source: str, options: list[str]) -> tuple[int, str, str]:
    """NVRTC without a GPU: (status, log, PTX)."""
    lib = ctypes.CDLL(library)
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"stats.cu", 0, None, None) == 0
    opts = [o.encode() for o in options]
    status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    ptx = b""
    if status == 0:
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, buf)
        ptx = buf.value
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return status, log.value.decode(errors="replace").strip(), ptx.decode(errors="replace")


@pytest.mark.skipif(nvrtc_library() is None, reason="no NVRTC library (pip install nvidia-cuda-nvrtc-cu12, or set "
                                                    "NVRTC_LIBRARY)")
@pytest.mark.parametrize("arch", ["80", "90"])
def test_the_kernels_compile_with_nvrtc_without_warnings(arch):
    lib = nvrtc_library()
    options = ["--std=c++17", "-ftz=true"]  # as GpuStats asks and CuPy adds
    status, log, ptx = nvrtc_compile(lib, gs.kernel_source(), [f"--gpu-architecture=compute_{arch}", *options])
    assert status == 0 and log == "", log
    assert set(re.findall(r"\.entry (\w+)", ptx)) == {"frame_stats_pixels", "frame_stats_focus"}
    # To machine code as well (ptxas inside NVRTC): no register spills, no local memory.
    status, log, _ = nvrtc_compile(lib, gs.kernel_source(), [f"--gpu-architecture=sm_{arch}", *options,
                                                             "--ptxas-options=-v"])
    assert status == 0, log
    assert "warning" not in log.lower(), log
    assert log.count("0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads") == 2, log


# ------------------------------------------------------------------------------ the kernels run on the host

# Enough of the CUDA runtime for stats.cu, on the CPU: one block at a time, one thread per CUDA thread (the
# same threads for every block of a launch, with a barrier between blocks), __syncthreads as a barrier, warp
# shuffles through a block-wide exchange (every shuffle in the kernels is reached by all threads of the block),
# shared memory as function statics, atomics as std::atomic_ref.
HOST_SHIM = r"""
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
struct Dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local Dim3 threadIdx, blockIdx;
inline Dim3 blockDim;
using std::min;
inline std::barrier<>* block_barrier = nullptr;
inline uint64_t exchange[1024];
#define __global__
#define __device__
#define __forceinline__ inline
#define __constant__ static const
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
    return std::atomic_ref<unsigned int>(*p).fetch_add(v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return std::atomic_ref<unsigned long long>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
template <class T> T __shfl_down_sync(unsigned, T v, int off) {
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    exchange[tid] = bits;
    block_barrier->arrive_and_wait();
    T r = v;
    if ((tid & 31) + off < 32) { bits = exchange[tid + off]; std::memcpy(&r, &bits, sizeof(T)); }
    block_barrier->arrive_and_wait();
    return r;
}
template <class F> void launch(Dim3 grid, Dim3 block, F kernel) {
    blockDim = block;
    const int n = block.x * block.y;
    std::barrier<> bar(n);
    block_barrier = &bar;
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t)
        threads.emplace_back([&, t] {
            threadIdx = {unsigned(t % block.x), unsigned(t / block.x), 0};
            for (unsigned z = 0; z < grid.z; ++z)
            for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = {bx, by, z};
                kernel();
                bar.arrive_and_wait();  // the block's shared memory is the next block's
            }
        });
    for (auto& t : threads) t.join();
}
#include "stats.cu"
int main(int argc, char** argv) {
    if (argc != 6) return 2;
    const int N = atoi(argv[3]), H = atoi(argv[4]), W = atoi(argv[5]);
    std::vector<unsigned char> bgr((size_t)N * H * W * 3), luma((size_t)N * H * W);
    std::vector<unsigned long long> acc((size_t)N * ACC_STRIDE, 0ull);
    FILE* f = fopen(argv[1], "rb");
    if (!f || fread(bgr.data(), 1, bgr.size(), f) != bgr.size()) return 3;
    fclose(f);
    const Dim3 grid{unsigned((W + TILE - 1) / TILE), unsigned((H + TILE - 1) / TILE), unsigned(N)}, block{BX, BY, 1};
    launch(grid, block, [&] { frame_stats_pixels(bgr.data(), luma.data(), acc.data(), H, W); });
    launch(grid, block, [&] { frame_stats_focus(luma.data(), acc.data(), H, W); });
    f = fopen(argv[2], "wb");
    if (!f || fwrite(acc.data(), 8, acc.size(), f) != acc.size()) return 4;
    fclose(f);
    return 0;
}
"""


# What the stand-in needs of C++20: a compiler without it skips the tests rather than failing them.
CXX20_PROBE = r"""
#include <atomic>
#include <barrier>
int main() { unsigned long long v = 0; std::atomic_ref<unsigned long long>(v).fetch_add(1); std::barrier<> b(1);
             b.arrive_and_wait(); return int(v) - 1; }
"""
# The kernels address the cell histograms as 32-bit words inside the 64-bit accumulators, as CUDA code does;
# -fno-strict-aliasing keeps the host compiler from assuming they cannot overlap.
CXX_FLAGS = ["-std=c++20", "-O2", "-Wall", "-Wno-unknown-pragmas", "-fno-strict-aliasing", "-pthread"]


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++ or clang++, or $CXX) to run the kernels on the host")
    d = tmp_path_factory.mktemp("host-kernels")
    (d / "probe.cpp").write_text(CXX20_PROBE)
    p = subprocess.run([cxx, *CXX_FLAGS, "probe.cpp", "-o", "probe"], cwd=d, capture_output=True, text=True,
                       timeout=120, check=False)
    if p.returncode != 0 or subprocess.run([str(d / "probe")], check=False, timeout=30).returncode != 0:
        pytest.skip(f"{cxx} cannot build C++20 with <barrier> and std::atomic_ref, which the host stand-in needs")
    shutil.copy(gs.KERNEL_FILE, d / "stats.cu")
    (d / "main.cpp").write_text(HOST_SHIM)
    p = subprocess.run([cxx, *CXX_FLAGS, "main.cpp", "-o", "kernels"], cwd=d, capture_output=True, text=True,
                       timeout=240, check=False)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr, p.stderr

    def run(batch: np.ndarray) -> np.ndarray:
        n, h, w = batch.shape[:3]
        np.ascontiguousarray(batch).tofile(d / "in.bin")
        subprocess.run([str(d / "kernels"), str(d / "in.bin"), str(d / "out.bin"), str(n), str(h), str(w)],
                       check=True, timeout=600)
        return np.fromfile(d / "out.bin", np.uint64).reshape(n, gs.ACC_STRIDE)

    return run


def cell_hists_with_numpy(bgr: np.ndarray) -> np.ndarray:
    """The grid cells' luma histograms, (8, 8, 256), straight from the definition."""
    b, g, r = (bgr[:, :, i].astype(np.int64) for i in range(3))
    y = (19596 * r + 38470 * g + 7470 * b + 32768) >> 16
    rb, cb = grid_bounds(y.shape[0]), grid_bounds(y.shape[1])
    return np.array([[np.bincount(y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]].ravel(), minlength=256) for j in range(8)]
                     for i in range(8)], np.int64)


def check_host_kernels(host_kernels, batches: dict[str, np.ndarray]) -> None:
    for name, batch in batches.items():
        acc = host_kernels(batch)
        for i, bgr in enumerate(batch):
            got = gs.stats_from_accumulators(acc[i], *bgr.shape[:2])
            assert_same_stats(got, cpu_stats(bgr))
            assert int(acc[i, gs.ACC_HIST:gs.ACC_HIST + 1024].sum()) == 4 * bgr.shape[0] * bgr.shape[1], name
            assert np.array_equal(gs.cell_hists_from_accumulators(acc[i]), cell_hists_with_numpy(bgr)), name


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # empty grid cells
def test_the_kernels_run_on_the_host_give_the_cpu_backend_s_statistics(host_kernels):
    sims = np.stack([LineSimulator(seed=3, scenario=s, width=160, height=128).render(slot)[0]
                     for s, slot in (("nominal", 5), ("lens-change", 400), ("mixed", 700))])
    rng = np.random.default_rng(1)
    odd = LineSimulator(seed=4, scenario="nominal", width=131, height=97).render(9)[0]
    # 300 x 260 and up: every tile meets at most 2 x 2 grid cells, whose histograms the block keeps in shared
    # memory; 300 x 200: some tiles meet three rows of cells and add to the global histograms instead.
    big = LineSimulator(seed=5, scenario="mixed", width=300, height=260).render(11)[0]
    batches = {"simulated batch of 3": sims, "odd size": odd[None], "odd size, blurred":
               cv2.GaussianBlur(odd, (0, 0), 2.5)[None], "noise, batch of 2": rng.integers(0, 256, (2, 33, 65, 3),
                                                                                         dtype=np.uint8),
               "white": np.full((1, 40, 48, 3), 255, np.uint8), "3x3": rng.integers(0, 256, (1, 3, 3, 3), np.uint8),
               "2 wide (reflected twice)": rng.integers(0, 256, (1, 9, 2, 3), np.uint8),
               "300x260, cells in shared memory": big[None],
               "300x200, both kinds of tile": big[:200][None]}
    check_host_kernels(host_kernels, batches)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("INSPECTION_STATION_SLOW_TESTS"),
                    reason="full-size frames on the host stand-in take ~40 s: set INSPECTION_STATION_SLOW_TESTS=1")
def test_the_kernels_run_on_the_host_give_the_cpu_backend_s_statistics_at_full_size(host_kernels):
    frames = frames_to_check()
    check_host_kernels(host_kernels, {"1279x1023": frames["1279x1023"][None],
                                      "lens-change 1280x1024": frames["lens-change"][None]})


# ------------------------------------------------------------------------------ the bench without a GPU


@pytest.mark.skipif(GPU_OK, reason="a GPU is present")
def test_the_stats_bench_says_why_there_is_no_gpu_row(tmp_path, capsys):
    from app.cli import main

    assert main(["bench", "stats", "--frames", "2", "--width", "96", "--height", "64", "--json",
                 "--data-dir", str(tmp_path / "d")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpu"] == f"not available ({GPU_WHY})"
    assert [r["backend"] for r in out["backends"]] == ["plain numpy/opencv (baseline)", "cpu"]


# ------------------------------------------------------------------------------ on the GPU


@pytest.fixture(scope="module")
def gpu():
    return gs.GpuStats()


@pytest.mark.gpu
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # empty grid cells
def test_gpu_statistics_are_the_cpu_backend_s(gpu):
    for bgr in frames_to_check().values():
        got = gs.gpu_stats(bgr)
        assert_same_stats(got, cpu_stats(bgr))


@pytest.mark.gpu
def test_a_batch_gives_each_frame_s_own_statistics(gpu):
    frames = [f for f in frames_to_check().values() if f.shape == (1024, 1280, 3)]
    batch = gpu.stats_batch(np.stack(frames))
    assert len(batch) == len(frames)
    for st, bgr in zip(batch, frames):
        assert_same_stats(st, gs.gpu_stats(bgr), focus_rel=1e-9)  # only the order of double additions differs


@pytest.mark.gpu
def test_device_frames_are_used_where_they_are(gpu):
    import cupy

    frames = np.stack([LineSimulator(seed=5, width=320, height=256).render(s)[0] for s in range(3)])
    on_device = cupy.asarray(frames)
    assert gpu.device_frames(on_device) is on_device
    for a, b in zip(gpu.stats_batch(on_device), gpu.stats_batch(frames)):
        assert_same_stats(a, b, focus_rel=1e-9)
    with pytest.raises(ValueError, match="contiguous"):
        gpu.stats_batch(on_device[:, ::2])
    with pytest.raises(ValueError, match="uint8"):
        gpu.stats_batch(on_device.astype(cupy.float32))


@pytest.mark.gpu
def test_a_torch_cuda_tensor_goes_in_through_dlpack_without_a_copy(gpu):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA")
    frames = np.stack([LineSimulator(seed=6, scenario="mixed", width=320, height=256).render(s)[0] for s in range(3)])
    tensor = torch.from_numpy(frames).cuda()
    assert gpu.device_frames(tensor).data.ptr == tensor.data_ptr()
    for a, b in zip(gpu.stats_batch(tensor), gpu.stats_batch(frames)):
        assert_same_stats(a, b, focus_rel=1e-9)


@pytest.mark.gpu
def test_the_measurers_use_the_gpu_when_asked(gpu):
    from engine.core.frame import Frame

    config = default_config()
    config["drift"]["reference"] = ""
    for word in ("auto", "gpu"):
        config["drift"]["backend"] = word
        (m,) = measurers_for(config)
        assert m.backend == "gpu"
        image = LineSimulator(seed=7, width=320, height=256).render(3)[0]
        values = m.measure(Frame(image, "BGR", 0, 0.0, "test"), None).values
        want = cpu_stats(image).to_record()
        assert values.keys() == want.keys()
        for k, v in want.items():
            if k == "focus":
                assert values[k] == pytest.approx(v, rel=FOCUS_REL, abs=1e-5)
            else:
                assert values[k] == v, k
