"""Geometric calibration against checkerboards rendered here through a lens of known intrinsics."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from app.cli import main
from engine.calibration.lens import (
    CalibrationError,
    Coverage,
    LensProfile,
    Pattern,
    compare_profiles,
    find_target,
    solve,
)

W, H = 640, 480
TRUE_F, TRUE_CX, TRUE_CY, TRUE_K1 = 720.0, 326.0, 236.0, -0.22
PATTERN = Pattern(9, 6, 8.0)


def render_board(rvec, tvec, f=TRUE_F, cx=TRUE_CX, cy=TRUE_CY, k1=TRUE_K1, w=W, h=H, ss=2) -> np.ndarray:
    """A 9x6 (inner corners) checkerboard of 8 mm squares seen through a pinhole lens with radial k1.

    Ray-cast per sub-pixel (``ss`` x ``ss`` supersampling, box-filtered): each pixel is undistorted
    (fixed-point iteration), its ray is intersected with the board plane and coloured by the square it hits.
    """
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    t = np.asarray(tvec, np.float64)
    sq = PATTERN.square_mm
    bw, bh = (PATTERN.cols + 1) * sq, (PATTERN.rows + 1) * sq
    v, u = np.mgrid[0:h * ss, 0:w * ss].astype(np.float64)
    u = (u + 0.5) / ss - 0.5
    v = (v + 0.5) / ss - 0.5
    xd, yd = (u - cx) / f, (v - cy) / f
    xu, yu = xd.copy(), yd.copy()
    for _ in range(10):
        s = 1 + k1 * (xu * xu + yu * yu)
        xu, yu = xd / s, yd / s
    n = R[:, 2]
    lam = float(n @ t) / (n[0] * xu + n[1] * yu + n[2])
    p = np.stack([lam * xu - t[0], lam * yu - t[1], lam - t[2]], -1) @ R  # board frame, corner (0,0) at origin
    bx, by = p[..., 0] + sq, p[..., 1] + sq  # inner corner (0,0) is one square in from the board's edge
    inside = (bx >= 0) & (bx < bw) & (by >= 0) & (by < bh)
    dark = ((np.floor(bx / sq) + np.floor(by / sq)) % 2 == 0) & inside
    img = np.where(dark, 30.0, np.where(inside, 220.0, 120.0))
    img = img.reshape(h, ss, w, ss).mean((1, 3))
    return np.clip(img + np.random.default_rng(0).normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)


def poses(n: int = 14, seed: int = 3):
    """Varied poses that keep the board in view and spread it over the field."""
    rng = np.random.default_rng(seed)
    out = []
    grid = [(gx, gy) for gy in (-1, 0, 1) for gx in (-1, 0, 1)]
    for i in range(n):
        gx, gy = grid[i % len(grid)]
        z = rng.uniform(230, 300)
        # Tilted 25-40 degrees about a random axis in the board plane: foreshortening fixes the focal length.
        axis = rng.uniform(0, 2 * math.pi)
        tilt = math.radians(rng.uniform(25, 40))
        r = np.array([tilt * math.cos(axis), tilt * math.sin(axis), rng.uniform(-0.3, 0.3)])
        centre = np.array([gx * 0.22 * W * z / TRUE_F, gy * 0.2 * H * z / TRUE_F, z])
        Rm, _ = cv2.Rodrigues(r)
        board_centre = np.array([PATTERN.cols - 1, PATTERN.rows - 1, 0]) * PATTERN.square_mm / 2
        out.append((r, centre - Rm @ board_centre))
    return out


@pytest.fixture(scope="module")
def board_images():
    return [render_board(r, t) for r, t in poses()]


def test_rendered_corners_match_the_lens_model(board_images):
    """The renderer itself: corners found in the images are where the true lens projects them."""
    (r, t), img = poses()[0], board_images[0]
    view = find_target(img, PATTERN)
    assert view is not None
    K = np.array([[TRUE_F, 0, TRUE_CX], [0, TRUE_F, TRUE_CY], [0, 0, 1]])
    proj, _ = cv2.projectPoints(PATTERN.object_points(), r, t, K, np.array([TRUE_K1, 0, 0, 0, 0]))
    found = view.image_points.reshape(-1, 2)
    proj = proj.reshape(-1, 2)
    # A checkerboard's corner order is ambiguous up to a half turn; either order must fit to a fraction of a pixel.
    rms = min(np.sqrt(((p - found) ** 2).sum(1).mean()) for p in (proj, proj[::-1]))
    assert rms < 0.3


def test_solve_recovers_focal_length_distortion_with_low_reprojection_error(board_images):
    views = [v for v in (find_target(im, PATTERN) for im in board_images) if v is not None]
    assert len(views) >= 12
    profile, tilts = solve(views, (W, H), PATTERN, working_distance_mm=300.0)
    assert profile.fx == pytest.approx(TRUE_F, rel=0.01)
    assert profile.fy == pytest.approx(TRUE_F, rel=0.01)
    assert profile.k1 == pytest.approx(TRUE_K1, abs=0.02)
    assert profile.cx == pytest.approx(TRUE_CX, abs=3) and profile.cy == pytest.approx(TRUE_CY, abs=3)
    assert profile.rms_px < 0.5
    assert profile.mm_per_px == pytest.approx(300.0 / TRUE_F, rel=0.01)
    assert 0.2 < profile.board_mm_per_px < 0.5  # the board at 230-300 mm: 8 mm over 19-25 px
    assert sum(t > 10 for t in tilts) >= 5


def test_a_wrong_focal_length_is_not_recovered_by_accident(board_images):
    """The same views through a lens 5 % longer solve to a focal length 5 % longer: the check can fail."""
    imgs = [render_board(r, t, f=TRUE_F * 1.05) for r, t in poses(8)]
    views = [v for v in (find_target(im, PATTERN) for im in imgs) if v is not None]
    profile, _ = solve(views, (W, H), PATTERN)
    assert profile.fx == pytest.approx(TRUE_F * 1.05, rel=0.01)
    assert abs(profile.fx - TRUE_F) / TRUE_F > 0.03


def test_coverage_names_the_cells_still_to_cover(board_images):
    cov = Coverage(W, H)
    view = find_target(board_images[0], PATTERN)  # the top-left pose
    cov.add(view)
    assert 0 < cov.share < 0.5
    assert "bottom right" in cov.missing()
    assert cov.advice(1, 10).startswith("Move the target to the")
    for im in board_images:
        v = find_target(im, PATTERN)
        if v is not None:
            cov.add(v)
    assert cov.share > 0.8


def test_profiles_compare_and_round_trip(tmp_path):
    old = LensProfile(1280, 1024, 3000.0, 3000.0, 639.5, 511.5, [0.0, 0, 0, 0, 0], mm_per_px=0.1)
    new = LensProfile(1280, 1024, 3180.0, 3180.0, 653.5, 502.5, [-0.5, 0.01, 0, 0, 0], mm_per_px=300 / 3180)
    rows = {r["key"]: r for r in compare_profiles(old, new)}
    assert rows["fx"]["relative"] == pytest.approx(0.06)
    assert rows["k1"]["delta"] == pytest.approx(-0.5)
    assert rows["cx"]["delta"] == pytest.approx(14.0)
    new.save(tmp_path / "p.json")
    assert LensProfile.load(tmp_path / "p.json").fx == pytest.approx(3180.0)


def test_calibrate_command_solves_a_folder_of_png_files(tmp_path, board_images, capsys):
    folder = tmp_path / "target"
    folder.mkdir()
    for i, im in enumerate(board_images):
        cv2.imwrite(str(folder / f"view_{i:02d}.png"), im)
    cv2.imwrite(str(folder / "empty.png"), np.full((H, W), 120, np.uint8))
    rc = main(["--data-dir", str(tmp_path / "d"), "calibrate", "--images", str(folder), "--pattern", "9x6",
               "--square-mm", "8", "--json", "--save"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saved"] and LensProfile.load(out["saved"]).fx == pytest.approx(out["fx"])
    assert out["fx"] == pytest.approx(TRUE_F, rel=0.01)
    assert out["k1"] == pytest.approx(TRUE_K1, abs=0.02)
    assert out["rms_px"] < 0.5
    assert out["views"] >= 12 and any(s["file"] == "empty.png" for s in out["skipped"])
    rc = main(["--data-dir", str(tmp_path / "d"), "calibrate", "--images", str(folder), "--pattern", "9x6",
               "--square-mm", "8"])
    text = capsys.readouterr().out
    assert rc == 0 and "focal length" in text
    assert "against the lens profile of" in text and "+0.00%" in text  # compared with the one saved above


def test_calibrate_command_errors_are_one_sentence(tmp_path, capsys):
    empty = tmp_path / "none"
    empty.mkdir()
    assert main(["calibrate", "--images", str(empty), "--pattern", "9x6", "--square-mm", "8"]) == 2
    err = capsys.readouterr().err
    assert "no images" in err and err.count("\n") == 1
    for i in range(3):
        cv2.imwrite(str(empty / f"{i}.png"), np.full((60, 80), 100 + i, np.uint8))
    assert main(["calibrate", "--images", str(empty), "--pattern", "9x6", "--square-mm", "8"]) == 2
    err = capsys.readouterr().err
    assert "found in 0 of 3 images" in err and err.count("\n") == 1
    assert main(["calibrate", "--images", str(empty), "--pattern", "nine", "--square-mm", "8"]) == 2
    assert "COLSxROWS" in capsys.readouterr().err


def test_pattern_parsing_refuses_nonsense():
    assert Pattern.parse("9x6", 8).size == (9, 6)
    with pytest.raises(CalibrationError):
        Pattern.parse("1x6", 8)
    with pytest.raises(CalibrationError):
        Pattern.parse("9x6", 0)


@pytest.mark.skipif(not hasattr(cv2, "aruco"), reason="OpenCV without ArUco")
def test_charuco_board_is_found_and_solves():
    from engine.calibration.lens import charuco_image

    p = Pattern(9, 6, 8.0, "charuco")
    board = charuco_image(p, px_per_square=40)  # 10 x 7 squares of 40 px for 80 x 56 mm
    views = []
    for r, t in poses(10, seed=5):
        # Project the board image through the true lens: corners of the printed board in mm -> pixels.
        bh, bw = board.shape
        mm = np.array([[0, 0, 0], [bw, 0, 0], [bw, bh, 0], [0, bh, 0]], np.float64) * (8.0 / 40)
        off = np.array([PATTERN.square_mm, PATTERN.square_mm, 0])  # inner-corner origin -> board origin
        K = np.array([[TRUE_F, 0, TRUE_CX], [0, TRUE_F, TRUE_CY], [0, 0, 1]])
        px, _ = cv2.projectPoints(mm - off, r, t, K, None)
        Hm = cv2.getPerspectiveTransform(np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]]), px.reshape(4, 2).astype(np.float32))
        img = cv2.warpPerspective(board, Hm, (W, H), flags=cv2.INTER_AREA, borderValue=120)
        v = find_target(img, p)
        if v is not None:
            views.append(v)
    assert len(views) >= 6
    profile, _ = solve(views, (W, H), p)
    # No distortion in these views (a homography cannot bend lines): the focal length still comes back.
    assert profile.fx == pytest.approx(TRUE_F, rel=0.02)
    assert math.isfinite(profile.rms_px) and profile.rms_px < 1.0
