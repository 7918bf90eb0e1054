"""Agreement statistics on nominal labels (NumPy), and their edge cases, chosen to match the reference packages:

- Cohen's kappa of two raters on the items both rated: ``(p_o - p_e) / (1 - p_e)``. When
  ``p_e = 1`` (both used one and the same label throughout) it is undefined: NaN, as scikit-learn's
  ``cohen_kappa_score`` returns. No common item: NaN.
- Fleiss' kappa on items that all have the same number ``n >= 2`` of ratings (the raters may differ
  from item to item). All ratings one label: ``p_e = 1``, NaN (statsmodels' ``fleiss_kappa`` returns
  NaN from its 0/0). In a report it is computed on the items with the most common number (>= 3) of
  ratings; with fewer than three raters per item it is not reported (``None``).
- Krippendorff's alpha (nominal) with missing ratings: units with fewer than two ratings are left
  out; ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k`` on the coincidence matrix.
  When only one value occurs (no expected disagreement) it is NaN; the ``krippendorff`` package raises
  ``ValueError`` there unless given a ``value_domain`` of two or more values, and then returns NaN.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def _codes(*label_lists: Sequence[Any]) -> tuple[list[np.ndarray], list[Any]]:
    values = sorted({v for labels in label_lists for v in labels}, key=str)
    index = {v: i for i, v in enumerate(values)}
    return [np.array([index[v] for v in labels], dtype=np.int64) for labels in label_lists], values


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters' labels for the same items, in order. NaN when undefined (see above)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    if len(a) == 0:
        return float("nan")
    (ca, cb), values = _codes(a, b)
    k = len(values)
    m = np.zeros((k, k))
    np.add.at(m, (ca, cb), 1.0)
    n = m.sum()
    po = np.trace(m) / n
    pe = float((m.sum(1) / n) @ (m.sum(0) / n))
    if math.isclose(pe, 1.0):
        return float("nan")
    return float((po - pe) / (1.0 - pe))


def fleiss_kappa(table: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Fleiss' kappa of an items x categories table of counts; every item needs the same number of ratings."""
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        return float("nan")
    n = t.sum(1)
    if not np.all(n == n[0]):
        raise ValueError("Fleiss' kappa needs the same number of ratings for every item")
    n0 = n[0]
    if n0 < 2:
        return float("nan")
    p_item = ((t * t).sum(1) - n0) / (n0 * (n0 - 1.0))
    p_cat = t.sum(0) / t.sum()
    pe = float((p_cat * p_cat).sum())
    if math.isclose(pe, 1.0):
        return float("nan")
    return float((p_item.mean() - pe) / (1.0 - pe))


def count_table(units: Sequence[Sequence[Any]], values: Sequence[Any] | None = None) -> np.ndarray:
    """Items x categories counts from each item's list of labels (missing ratings simply absent)."""
    if values is None:
        values = sorted({v for u in units for v in u}, key=str)
    index = {v: i for i, v in enumerate(values)}
    t = np.zeros((len(units), max(1, len(values))))
    sizes = [len(u) for u in units]
    rows = np.repeat(np.arange(len(units)), sizes)
    cols = np.fromiter((index[v] for u in units for v in u), dtype=np.int64, count=int(sum(sizes)))
    np.add.at(t, (rows, cols), 1.0)
    return t


def krippendorff_alpha(units: Sequence[Sequence[Any]] | np.ndarray, counts: bool = False) -> float:
    """Krippendorff's alpha, nominal, from each unit's labels (any number, missing ones absent), or from an
    items x categories count table with ``counts=True``."""
    t = np.asarray(units, dtype=np.float64) if counts else count_table(units)
    if t.ndim != 2 or t.size == 0:
        return float("nan")
    m = t.sum(1)
    t = t[m >= 2]
    m = m[m >= 2]
    if t.shape[0] == 0:
        return float("nan")
    w = t / (m - 1.0)[:, None]
    o = w.T @ t - np.diag(w.sum(0))  # coincidences: ordered pairs of values within a unit, weighted 1/(m_u - 1)
    nc = o.sum(1)
    n = nc.sum()
    observed = o.sum() - np.trace(o)
    expected = nc.sum() ** 2 - (nc * nc).sum()
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * observed / expected)


def percent_agreement(a: Sequence[Any], b: Sequence[Any]) -> float:
    if not len(a):
        return float("nan")
    return float(np.mean([x == y for x, y in zip(a, b)]))
