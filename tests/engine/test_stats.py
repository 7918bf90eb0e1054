"""The statistics against an independent NumPy/SciPy computation of the documented definitions."""

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from engine.simulation.line import LineSimulator
from engine.monitoring.stats import SCALARS, cct_from_rgb, cpu_stats, plain_stats


def independent(bgr):
    """The README's definitions, written again from scratch with NumPy and SciPy."""
    b, g, r = (bgr[:, :, i].astype(np.int64) for i in range(3))
    y = (19596 * r + 38470 * g + 7470 * b + 32768) >> 16
    h, w = y.shape
    out = {}
    for name, ch in (("b", b), ("g", g), ("r", r), ("luma", y)):
        out[f"mean_{name}"] = ch.mean()
        out[f"std_{name}"] = ch.std()
    out["gain_r"] = r.mean() / g.mean()
    out["gain_b"] = b.mean() / g.mean()
    out["rms_contrast"] = y.std() / 255
    out["clip_dark"] = np.mean(y <= 2)
    out["clip_bright"] = np.mean(y >= 253)
    yf = y.astype(np.float64)
    lap = ndimage.convolve(yf, np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float), mode="reflect")
    out["noise"] = math.sqrt(math.pi / 2) * np.abs(lap[1:-1, 1:-1]).sum() / (6 * (w - 2) * (h - 2))
    g1 = ndimage.gaussian_filter(yf, 1.0, mode="reflect", truncate=3.0)
    g2 = ndimage.gaussian_filter(yf, 2.0, mode="reflect", truncate=3.0)
    fine, coarse = yf - g1, g1 - g2
    mask = np.abs(coarse) >= max(1.0, out["noise"])
    n2 = out["noise"] ** 2
    out["focus"] = (math.sqrt(max(0, (fine[mask] ** 2).mean() - 0.7613 * n2)
                              / max(1e-6, (coarse[mask] ** 2).mean() - 0.0358 * n2)) if mask.any() else 0.0)
    rb = [i * h // 8 for i in range(9)]
    cb = [j * w // 8 for j in range(9)]
    grid = np.array([[y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]].mean() for j in range(8)] for i in range(8)])
    out["uniformity"] = grid.min() / grid.max()
    out["vignetting"] = 1 - (grid[0, 0] + grid[0, -1] + grid[-1, 0] + grid[-1, -1]) / 4 / grid[3:5, 3:5].mean()
    out["cct_k"] = cct_from_rgb(r.mean(), g.mean(), b.mean())
    out["cell_median"] = np.array([[grouped_median(y[rb[i]:rb[i + 1], cb[j]:cb[j + 1]]) for j in range(8)]
                                   for i in range(8)])
    return out, grid, np.bincount(y.ravel(), minlength=256)


def grouped_median(cell):
    """The median with each integer level spread over [v - 0.5, v + 0.5), from the sorted values."""
    vals = np.sort(cell.ravel())
    half = len(vals) / 2
    m = vals[math.ceil(half) - 1]  # the level at which the count reaches half
    below = np.searchsorted(vals, m, "left")
    k = np.searchsorted(vals, m, "right") - below
    return m - 0.5 + (half - below) / k


@pytest.fixture(scope="module")
def frames():
    sim = LineSimulator(seed=11, scenario="mixed", width=320, height=256)
    rng = np.random.default_rng(0)
    return [sim.render(5)[0], sim.render(260)[0], rng.integers(0, 256, (97, 131, 3), dtype=np.uint8),
            np.full((64, 80, 3), 255, np.uint8)]


TOL = {"focus": 2e-2, "noise": 1e-5}  # Gaussian kernels: OpenCV's and SciPy's truncation differ slightly


def test_cpu_stats_follow_the_documented_definitions(frames):
    for bgr in frames[:3]:
        got = cpu_stats(bgr)
        want, grid, hist = independent(bgr)
        for k in SCALARS:
            assert got.scalars[k] == pytest.approx(want[k], rel=TOL.get(k, 1e-9), abs=1e-9), k
        assert np.allclose(got.grid, grid)
        assert np.allclose(got.cell_median, want["cell_median"], rtol=0, atol=1e-9)
        assert np.array_equal(got.hist[0], hist)
        assert got.hist[1:].sum() == 3 * bgr.shape[0] * bgr.shape[1]


def test_the_baseline_gives_the_same_numbers(frames):
    for bgr in frames:
        a, b = cpu_stats(bgr), plain_stats(bgr)
        for k in SCALARS:
            if math.isnan(b.scalars[k]):
                assert math.isnan(a.scalars[k])
            else:
                assert a.scalars[k] == pytest.approx(b.scalars[k], rel=1e-6, abs=1e-9), k
        assert np.array_equal(a.cell_median, b.cell_median)


def test_a_part_over_less_than_half_a_cell_moves_its_median_by_less_than_a_grey_level():
    y = np.full((80, 80), 60, np.uint8)  # the belt
    y[:10, :] = 150  # a rail along the top of the first row of cells
    plain = cpu_stats(cv2.cvtColor(y, cv2.COLOR_GRAY2BGR))
    y[20:24, 10:40] = 220  # a bright part over 4 x 10 of the 10 x 10 pixels of three cells, under half
    with_part = cpu_stats(cv2.cvtColor(y, cv2.COLOR_GRAY2BGR))
    assert plain.cell_median[0, 0] == 150.0 and plain.cell_median[2, 1] == 60.0
    assert np.abs(with_part.cell_median - plain.cell_median).max() < 0.5  # within the belt's grey level
    assert with_part.grid[2, 1] > plain.grid[2, 1] + 60  # the mean moves by 64 levels


def test_luma_is_the_definition_for_every_colour():
    from engine.monitoring.stats import _luma, luma_reference

    levels = np.arange(256, dtype=np.int64)
    every = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(4096, 4096, 3)
    b, g, r = every[..., 0], every[..., 1], every[..., 2]
    want = (19596 * r + 38470 * g + 7470 * b + 32768) >> 16
    assert np.array_equal(_luma(every.astype(np.uint8)), want)
    assert np.array_equal(luma_reference(every.astype(np.uint8)), want)


def test_clipping_and_a_saturated_frame(frames):
    white = cpu_stats(frames[3]).scalars
    assert white["clip_bright"] == 1.0 and white["clip_dark"] == 0.0 and white["std_luma"] == 0.0


def textures():
    rng = np.random.default_rng(3)
    fine = cv2.GaussianBlur(rng.normal(128, 40, (256, 256)), (0, 0), 0.7)
    bars = np.tile((np.arange(256) // 6 % 2) * 120 + 60.0, (256, 1))
    part = cv2.cvtColor(LineSimulator(seed=1, width=256, height=256).render(8)[0], cv2.COLOR_BGR2GRAY).astype(float)
    return {"fine noise": fine, "bars": bars, "part on belt": part}


def focus_of(grey, blur, contrast=1.0):
    img = grey if blur == 0 else cv2.GaussianBlur(grey, (0, 0), blur)
    img = 128 + (img - 128) * contrast + np.random.default_rng(1).normal(0, 1.5, img.shape)
    bgr = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return cpu_stats(bgr).scalars["focus"]


def laplacian_var(grey, blur, contrast=1.0):
    img = grey if blur == 0 else cv2.GaussianBlur(grey, (0, 0), blur)
    img = np.clip(128 + (img - 128) * contrast, 0, 255).astype(np.uint8)
    return cv2.Laplacian(img, cv2.CV_64F).var()


def test_focus_ranks_blur_correctly_whatever_the_texture():
    # Over the range a refocus or a lens swap produces; far beyond it a fine texture sinks into the noise.
    for name, tex in textures().items():
        scores = [focus_of(tex, s) for s in (0, 0.8, 1.6, 2.4)]
        assert scores == sorted(scores, reverse=True), name


def test_focus_does_not_rise_with_texture_as_the_laplacian_does():
    """Every sharp, faint texture outranks every blurred, strong one; the Laplacian's variance does not."""
    tex = textures()
    pairs = [((tex[a], 0, 0.25), (tex[b], 1.6, 1.0)) for a in tex for b in tex]
    assert all(focus_of(*sharp) > focus_of(*blurred) for sharp, blurred in pairs)
    assert any(laplacian_var(*sharp) < laplacian_var(*blurred) for sharp, blurred in pairs)
    # Contrast alone barely moves it.
    fine = tex["fine noise"]
    assert focus_of(fine, 0, 0.3) == pytest.approx(focus_of(fine, 0, 1.0), rel=0.2)
