"""Control charts calibrated to an average run length, and distribution distances.

Consecutive frames are strongly correlated (the same parts cross several frames), so the
charts run on *batch means* of consecutive frames, whose batch size is chosen from the
reference so the batch means are close to independent; the charts' limits then follow the
i.i.d. normal theory for a stated in-control average run length (ARL0, in batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps


@lru_cache(maxsize=64)
def ewma_arl(lam: float, L: float, shift: float = 0.0, states: int = 121) -> float:
    """ARL of a two-sided EWMA chart (steady-state limits ``+-L`` sigma) by Brook and Evans' Markov chain."""
    sigma_z = math.sqrt(lam / (2 - lam))
    h = L * sigma_z
    w = 2 * h / states
    centres = -h + w * (np.arange(states) + 0.5)
    # P(z_next in state j | z = c_i) with z_next = (1 - lam) c_i + lam x, x ~ N(shift, 1)
    lo = (centres[None, :] - w / 2 - (1 - lam) * centres[:, None]) / lam
    hi = (centres[None, :] + w / 2 - (1 - lam) * centres[:, None]) / lam
    P = sps.norm.cdf(hi - shift) - sps.norm.cdf(lo - shift)
    arl = np.linalg.solve(np.eye(states) - P, np.ones(states))
    return float(arl[states // 2])


def _solve_increasing(f, target: float, lo: float, hi: float, steps: int = 50) -> float:
    """The smallest x in [lo, hi] (to bisection precision) with f(x) >= target, f increasing."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


@lru_cache(maxsize=64)
def ewma_limit(lam: float, arl0: float) -> float:
    """The ``L`` (in sigmas of the EWMA) that gives an in-control ARL of ``arl0``."""
    return _solve_increasing(lambda L: ewma_arl(lam, L), arl0, 1.0, 8.0, 40)


def cusum_arl(k: float, h: float, shift: float = 0.0) -> float:
    """Two-sided tabular CUSUM ARL by Siegmund's approximation (one side each, combined)."""

    def one(delta: float) -> float:
        b = h + 1.166
        if abs(delta) < 1e-9:
            return b * b
        return (math.exp(-2 * delta * b) + 2 * delta * b - 1) / (2 * delta * delta)

    up, down = one(shift - k), one(-shift - k)
    return 1.0 / (1.0 / up + 1.0 / down)


@lru_cache(maxsize=64)
def cusum_limit(k: float, arl0: float) -> float:
    """The decision interval ``h`` (in sigmas) that gives an in-control ARL of ``arl0``."""
    return _solve_increasing(lambda h: cusum_arl(k, h), arl0, 0.5, 40.0, 60)


@dataclass
class ChartState:
    ewma: float
    cusum_hi: float = 0.0
    cusum_lo: float = 0.0
    n: int = 0


class ControlChart:
    """EWMA and two-sided CUSUM on standardised batch means of one metric."""

    def __init__(self, mean: float, sigma: float, arl0: float, lam: float = 0.2, k: float = 0.5,
                 upper_only: bool = False) -> None:
        self.mean = float(mean)
        # A distance from the reference (0 is a perfect match) drifts only upward: lower is no drift.
        self.upper_only = upper_only
        self.sigma = float(sigma) if sigma > 0 else 1e-9
        self.lam = lam
        self.k = k
        self.arl0 = arl0
        self.L = ewma_limit(lam, arl0)
        self.h = cusum_limit(k, arl0)
        self.state = ChartState(ewma=self.mean)

    @property
    def ewma_halfwidth(self) -> float:
        return self.L * self.sigma * math.sqrt(self.lam / (2 - self.lam))

    def update(self, batch_mean: float) -> bool:
        """Feed one batch mean; True when either chart signals a shift."""
        s = self.state
        x = (batch_mean - self.mean) / self.sigma
        s.ewma = self.lam * batch_mean + (1 - self.lam) * s.ewma
        s.cusum_hi = max(0.0, s.cusum_hi + x - self.k)
        s.cusum_lo = max(0.0, s.cusum_lo - x - self.k)
        s.n += 1
        return self.signalling

    @property
    def signalling(self) -> bool:
        s = self.state
        if self.upper_only:
            return s.ewma - self.mean > self.ewma_halfwidth or s.cusum_hi > self.h
        return abs(s.ewma - self.mean) > self.ewma_halfwidth or s.cusum_hi > self.h or s.cusum_lo > self.h

    def reset(self) -> None:
        self.state = ChartState(ewma=self.mean)


# ------------------------------------------------------------------------------ distances


def _probs(h: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Shares of a histogram of counts or shares, each smoothed by ``eps`` (empty bins would make KL and PSI
    infinite) and normalised again: the result does not depend on the histogram's scale."""
    p = np.asarray(h, np.float64)
    total = p.sum()
    p = p / total if total > 0 else np.full(p.shape, 1.0 / max(p.size, 1))
    p = p + eps
    return p / p.sum()


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two histograms over the same bins (counts or shares)."""
    p, q = _probs(reference), _probs(current)
    return float(np.sum((q - p) * np.log(q / p)))


LUMA_PSI_BINS = 16  # PSI's usual reading (0.1 a shift, 0.25 a large one) assumes ten to twenty bins


def luma_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """The station's luminance PSI: two 256-bin luminance histograms (counts or shares) merged into
    :data:`LUMA_PSI_BINS` equal bins, then :func:`psi`. The drift monitor's ``psi_luma`` and the recalibration's
    domain check both report this number."""
    r = np.asarray(reference, np.float64).reshape(LUMA_PSI_BINS, -1).sum(1)
    c = np.asarray(current, np.float64).reshape(LUMA_PSI_BINS, -1).sum(1)
    return psi(r, c)


def kl(reference: np.ndarray, current: np.ndarray) -> float:
    """KL(current || reference), smoothed."""
    p, q = _probs(reference), _probs(current)
    return float(np.sum(q * np.log(q / p)))


def js(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0..1)."""
    p, q = _probs(reference, 0.0), _probs(current, 0.0)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(p / m), 0.0)
        b = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(0.5 * a.sum() + 0.5 * b.sum())


def wasserstein1(reference: np.ndarray, current: np.ndarray) -> float:
    return float(sps.wasserstein_distance(reference, current))


def ks(reference: np.ndarray, current: np.ndarray) -> float:
    return float(sps.ks_2samp(reference, current).statistic)


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel (biased estimate)."""
    g = 1.0 / (2 * bandwidth * bandwidth)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return float(np.exp(-g * np.maximum(d, 0)).mean())

    return k(x, x) + k(y, y) - 2 * k(x, y)
