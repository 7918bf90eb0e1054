"""Per-frame optical-health statistics: one definition, several backends.

Definitions (BGR uint8 frame of H x W pixels, N = H * W; every backend follows them):

- **luma** ``Y = (19596 R + 38470 G + 7470 B + 32768) >> 16`` (ITU-R BT.601 weights in 16-bit fixed point,
  summing to exactly 2^16 so that grey stays grey; an integer 0..255 per pixel).
- **histograms** 256 bins of ``Y`` and of each channel, as pixel counts.
- ``mean_{b,g,r,luma}``, ``std_{b,g,r,luma}``: mean and population standard deviation (from the histograms).
- ``gain_r = mean_r / mean_g``, ``gain_b = mean_b / mean_g`` (colour balance).
- ``cct_k``: correlated colour temperature of the mean colour, read as sRGB (sRGB decoding, sRGB-to-XYZ
  matrix, McCamy's formula). A trend figure: its absolute value depends on the camera's white balance.
- ``rms_contrast = std_luma / 255``.
- ``clip_dark``: share of pixels with ``Y <= 2``; ``clip_bright``: share with ``Y >= 253``.
- ``noise``: Immerkaer's estimate of the noise standard deviation of ``Y``:
  ``sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum |Y * L|`` over the interior, ``L = [[1,-2,1],[-2,4,-2],[1,-2,1]]``.
- ``focus``: share of fine detail in the detail the frame has, so that it falls with defocus whatever the
  texture's amount or contrast: with ``G_s`` a Gaussian blur of standard deviation ``s`` (reflected borders),
  the fine band ``F = Y - G_1(Y)`` and the coarse band ``C = G_1(Y) - G_2(Y)``; over the pixels where
  ``|C| >= max(1, noise)`` (the structure above noise), with ``m()`` the mean there,
  ``focus = sqrt(max(0, m(F^2) - 0.7613 noise^2) / max(1e-6, m(C^2) - 0.0358 noise^2))``: the band energies
  less what white noise of the estimated level puts into each band (the filters' squared gains).
- ``grid``: mean ``Y`` over an 8 x 8 partition (row bounds ``floor(i H / 8)``, column bounds likewise);
  ``uniformity = min(grid) / max(grid)``; ``vignetting = 1 - mean(four corner cells) / mean(four centre cells)``.
- ``cell_median``: per cell of the same partition, the median of ``Y`` read from the cell's 256-bin histogram,
  each level spread evenly over ``[v - 0.5, v + 0.5)``: with ``n`` the cell's pixels, ``c(v)`` those with
  ``Y < v`` and ``k(v)`` those with ``Y = v``, the level ``m`` with ``c(m) < n / 2 <= c(m) + k(m)`` gives
  ``m - 0.5 + (n / 2 - c(m)) / k(m)``. Unlike the mean, a part that covers less than half the cell moves it by
  less than a grey level, so it follows the light on what stays in place (fixtures, rails, the belt).

The CPU backend gets the moments from the histograms (exact) and the rest from a few OpenCV passes;
:func:`plain_stats` computes the same definitions the straightforward NumPy way and is the baseline the
benchmark compares against. The GPU backend (:mod:`engine.monitoring.gpu_stats`, CUDA kernels in ``engine/monitoring/kernels/stats.cu``)
gets the histograms, the grid and the noise from exact integer sums, so they are the CPU backend's to the bit; its
blurs use OpenCV's taps (9 and 17 for sigma 1 and 2 on float images) summed in another order, so its focus figure
agrees to a few parts in a million (1e-4 is the tested tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

GRID = 8
SCALARS = ("mean_b", "mean_g", "mean_r", "mean_luma", "std_b", "std_g", "std_r", "std_luma", "gain_r", "gain_b",
           "cct_k", "rms_contrast", "clip_dark", "clip_bright", "noise", "focus", "uniformity", "vignetting")
LAPLACE_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_LEVELS = np.arange(256, dtype=np.float64)


@dataclass
class FrameStats:
    """The statistics of one frame: named scalars, histograms (luma, b, g, r) and the luminance grid."""

    scalars: dict[str, float]
    hist: np.ndarray  # int64, shape (4, 256): luma, b, g, r
    grid: np.ndarray  # float64, shape (GRID, GRID)
    extra: dict[str, Any] = field(default_factory=dict)
    cell_median: np.ndarray | None = None  # float64, shape (GRID, GRID)

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(float(v), 5) for k, v in self.scalars.items()}
        out["grid"] = [round(float(v), 2) for v in self.grid.ravel()]
        if self.cell_median is not None:
            out["cell_median"] = [round(float(v), 3) for v in self.cell_median.ravel()]
        return out


# ------------------------------------------------------------------------------ shared pieces


def moments(hist: np.ndarray) -> tuple[float, float]:
    n = hist.sum()
    mean = float(hist @ _LEVELS) / n
    var = float(hist @ (_LEVELS * _LEVELS)) / n - mean * mean
    return mean, math.sqrt(max(0.0, var))


def cct_from_rgb(r: float, g: float, b: float) -> float:
    """McCamy's correlated colour temperature of an sRGB colour given as 0..255 means."""

    def lin(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    rl, gl, bl = lin(r), lin(g), lin(b)
    x_ = 0.4124 * rl + 0.3576 * gl + 0.1805 * bl
    y_ = 0.2126 * rl + 0.7152 * gl + 0.0722 * bl
    z_ = 0.0193 * rl + 0.1192 * gl + 0.9505 * bl
    s = x_ + y_ + z_
    if s <= 0:
        return float("nan")
    x, y = x_ / s, y_ / s
    n = (x - 0.3320) / (0.1858 - y)
    return 449.0 * n ** 3 + 3525.0 * n ** 2 + 6823.3 * n + 5520.33


def grid_bounds(size: int, cells: int = GRID) -> np.ndarray:
    return (np.arange(cells + 1) * size) // cells


def medians_from_cell_hists(cell_hist: np.ndarray) -> np.ndarray:
    """The ``cell_median`` grid from per-cell luma histograms, shape (GRID, GRID, 256) (see the definition)."""
    h = np.asarray(cell_hist, np.float64).reshape(-1, 256)
    n = h.sum(axis=1)
    below = np.cumsum(h, axis=1) - h  # c(v)
    half = (n / 2)[:, None]
    m = np.argmax((below < half) & (below + h >= half), axis=1)
    rows = np.arange(len(h))
    k = np.maximum(h[rows, m], 1.0)
    med = m - 0.5 + (n / 2 - below[rows, m]) / k
    return np.where(n > 0, med, np.nan).reshape(GRID, GRID)


FINE_NOISE_GAIN = 0.7613  # sum of (delta - G_1)^2 over the kernel: white noise variance passed into F
COARSE_NOISE_GAIN = 0.0358  # sum of (G_1 - G_2)^2: into C


def focus_from_energies(ef: float, ec: float, noise: float) -> float:
    """The focus figure from the mean band energies over the mask (see the definition above)."""
    n2 = noise * noise
    return math.sqrt(max(0.0, ef - FINE_NOISE_GAIN * n2) / max(1e-6, ec - COARSE_NOISE_GAIN * n2))


def scalars_from_parts(hist: np.ndarray, grid: np.ndarray, noise: float, focus: float) -> dict[str, float]:
    """Everything that follows from the histograms, the grid, the noise and the focus figure."""
    n = float(hist[0].sum())
    mean_l, std_l = moments(hist[0])
    mean_b, std_b = moments(hist[1])
    mean_g, std_g = moments(hist[2])
    mean_r, std_r = moments(hist[3])
    g = max(mean_g, 1e-9)
    corners = (grid[0, 0] + grid[0, -1] + grid[-1, 0] + grid[-1, -1]) / 4
    c0, c1 = GRID // 2 - 1, GRID // 2 + 1
    centre = grid[c0:c1, c0:c1].mean()
    return {
        "mean_b": mean_b, "mean_g": mean_g, "mean_r": mean_r, "mean_luma": mean_l,
        "std_b": std_b, "std_g": std_g, "std_r": std_r, "std_luma": std_l,
        "gain_r": mean_r / g, "gain_b": mean_b / g, "cct_k": cct_from_rgb(mean_r, mean_g, mean_b),
        "rms_contrast": std_l / 255.0,
        "clip_dark": float(hist[0, :3].sum()) / n, "clip_bright": float(hist[0, 253:].sum()) / n,
        "noise": noise, "focus": focus,
        "uniformity": float(grid.min() / max(grid.max(), 1e-9)),
        "vignetting": float(1.0 - corners / max(centre, 1e-9)),
    }


# ------------------------------------------------------------------------------ CPU backend


LUMA_WEIGHTS = (19596, 38470, 7470)  # R, G, B; shift 16


def luma_reference(bgr: np.ndarray) -> np.ndarray:
    """The luma definition, computed exactly (uint16 tables; slower than OpenCV's conversion)."""
    lut = np.zeros((256, 1, 3), np.uint32)
    levels = np.arange(256, dtype=np.uint32)
    wr, wg, wb = LUMA_WEIGHTS
    lut[:, 0, 0], lut[:, 0, 1], lut[:, 0, 2] = wb * levels, wg * levels, wr * levels
    b, g, r = (lut[bgr[:, :, i], 0, i] for i in range(3))
    return ((b + g + r + 32768) >> 16).astype(np.uint8)


@lru_cache(maxsize=1)
def opencv_luma_is_exact() -> bool:
    """Whether this OpenCV's BGR->GRAY is exactly the definition, for all 2^24 colours (OpenCV 5 is;
    4.x used 14-bit weights). Decided once, in about 0.1 s: measurers call it when they are made."""
    levels = np.arange(256, dtype=np.uint32)
    wr, wg, wb = LUMA_WEIGHTS
    # Every colour as a 4096 x 4096 image: rows are (b, g-high), columns (g-low, r); the definition is
    # separable, so it is a sum of three broadcast tables.
    b = np.repeat(levels, 16)[:, None]
    g = (np.tile(np.arange(16, dtype=np.uint32), 256) * 16)[:, None] + np.repeat(np.arange(16, dtype=np.uint32),
                                                                                256)[None, :]
    r = np.tile(levels, 16)[None, :]
    want = ((wb * b + wg * g + wr * r + 32768) >> 16).astype(np.uint8)
    every = np.empty((4096, 4096, 3), np.uint8)
    every[..., 0], every[..., 1], every[..., 2] = b, g, r
    return bool(np.array_equal(cv2.cvtColor(every, cv2.COLOR_BGR2GRAY), want))


def _luma(bgr: np.ndarray) -> np.ndarray:
    if opencv_luma_is_exact():
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return luma_reference(bgr)


def _noise(yf: np.ndarray) -> float:
    h, w = yf.shape
    if h < 3 or w < 3:
        return 0.0
    r = cv2.filter2D(yf, cv2.CV_32F, LAPLACE_NOISE_KERNEL, borderType=cv2.BORDER_REFLECT)
    total = float(np.abs(r[1:-1, 1:-1]).sum(dtype=np.float64))
    return math.sqrt(math.pi / 2) * total / (6.0 * (w - 2) * (h - 2))


def _focus(yf: np.ndarray, noise: float) -> float:
    g1 = cv2.GaussianBlur(yf, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    g2 = cv2.GaussianBlur(yf, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    fine = cv2.subtract(yf, g1)
    coarse = cv2.absdiff(g1, g2)
    mask = cv2.compare(coarse, max(1.0, noise), cv2.CMP_GE)
    # Means over the same mask: their ratio is the ratio of the sums.
    if not cv2.countNonZero(mask):
        return 0.0
    ef = cv2.mean(cv2.multiply(fine, fine), mask=mask)[0]
    ec = cv2.mean(cv2.multiply(coarse, coarse), mask=mask)[0]
    return focus_from_energies(ef, ec, noise)


def _cell_hists(y: np.ndarray) -> np.ndarray:
    rb, cb = grid_bounds(y.shape[0]), grid_bounds(y.shape[1])
    out = np.empty((GRID, GRID, 256), np.int64)
    for i in range(GRID):
        for j in range(GRID):
            out[i, j] = cv2.calcHist([y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]]], [0], None, [256], [0, 256]).ravel()
    return out


def cpu_stats(bgr: np.ndarray) -> FrameStats:
    """The statistics of one BGR uint8 frame on the CPU (NumPy/OpenCV)."""
    y = _luma(bgr)
    cells = _cell_hists(y)
    # The frame's luma histogram and the grid of means follow from the cells' histograms (exact integer sums).
    hist = np.empty((4, 256), np.int64)
    hist[0] = cells.sum(axis=(0, 1))
    for c in range(3):
        hist[1 + c] = cv2.calcHist([bgr], [c], None, [256], [0, 256]).ravel()
    grid = (cells @ _LEVELS) / cells.sum(axis=2).astype(np.float64)
    yf = y.astype(np.float32)
    noise = _noise(yf)
    focus = _focus(yf, noise)
    return FrameStats(scalars_from_parts(hist, grid, noise, focus), hist, grid,
                      cell_median=medians_from_cell_hists(cells))


# ------------------------------------------------------------------------------ plain baseline


def plain_stats(bgr: np.ndarray) -> FrameStats:
    """The same definitions computed the straightforward way: the benchmark's baseline."""
    b = bgr[:, :, 0].astype(np.int64)
    g = bgr[:, :, 1].astype(np.int64)
    r = bgr[:, :, 2].astype(np.int64)
    y = (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b + 32768) >> 16
    hist = np.stack([np.bincount(ch.ravel(), minlength=256) for ch in (y, b, g, r)]).astype(np.int64)
    h, w = y.shape
    rb, cb = grid_bounds(h), grid_bounds(w)
    grid = np.array([[y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]].mean() for j in range(GRID)] for i in range(GRID)])
    cell_hist = np.array([[np.bincount(y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]].ravel(), minlength=256)
                           for j in range(GRID)] for i in range(GRID)])
    yf = y.astype(np.float64)
    lap = cv2.filter2D(yf, cv2.CV_64F, LAPLACE_NOISE_KERNEL.astype(np.float64), borderType=cv2.BORDER_REFLECT)
    noise = math.sqrt(math.pi / 2) * np.abs(lap[1:-1, 1:-1]).sum() / (6.0 * (w - 2) * (h - 2))
    g1 = cv2.GaussianBlur(yf, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    g2 = cv2.GaussianBlur(yf, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    fine, coarse = yf - g1, g1 - g2
    mask = np.abs(coarse) >= max(1.0, noise)
    focus = focus_from_energies((fine[mask] ** 2).mean(), (coarse[mask] ** 2).mean(), noise) if mask.any() else 0.0
    scalars = scalars_from_parts(hist, grid, float(noise), float(focus))
    # The baseline takes its moments straight from the pixels rather than from the histograms.
    for name, ch in (("b", b), ("g", g), ("r", r), ("luma", y)):
        scalars[f"mean_{name}"] = float(ch.mean())
        scalars[f"std_{name}"] = float(ch.std())
    return FrameStats(scalars, hist, grid, cell_median=medians_from_cell_hists(cell_hist))
