"""Targets shown to the simulated camera: the checkerboard a technician holds up during recalibration.

Its pose is varied and reproducible: a function of the station's seed and the frame slot. It is rendered
through the lens model (not merely warped), so OpenCV's calibration recovers the simulated lens from it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from engine.simulation.optics import WORKING_DISTANCE_MM, Camera, mm_per_px

BOARD_INNER = (9, 6)  # inner corners, columns x rows
BOARD_SQUARE_MM = 8.0


def board_pose(seed: int, slot: int, width: int, height: int) -> dict[str, Any]:
    """Where the checkerboard is held in a given slot: a varied, reproducible pose."""
    rng = np.random.default_rng([seed, 4, slot])
    cols, rows = BOARD_INNER
    bw, bh = (cols + 1) * BOARD_SQUARE_MM, (rows + 1) * BOARD_SQUARE_MM
    field_w = width * mm_per_px(width)
    field_h = height * mm_per_px(width)
    rx, ry = rng.uniform(-0.45, 0.45, 2)
    rz = rng.uniform(-0.3, 0.3)
    z = WORKING_DISTANCE_MM * rng.uniform(0.95, 1.35)
    span_x = max(0.0, (field_w * z / WORKING_DISTANCE_MM - bw * 1.15) / 2)
    span_y = max(0.0, (field_h * z / WORKING_DISTANCE_MM - bh * 1.15) / 2)
    tx, ty = rng.uniform(-span_x, span_x), rng.uniform(-span_y, span_y)
    return {"rvec": [float(rx), float(ry), float(rz)], "centre_mm": [float(tx), float(ty), float(z)],
            "inner_corners": [cols, rows], "square_mm": BOARD_SQUARE_MM}


def render_checkerboard(scene: np.ndarray, pose: dict[str, Any], cam: Camera) -> np.ndarray:
    """The board in ``pose`` seen through ``cam``, drawn over ``scene`` (uint8 BGR, changed and returned)."""
    R, _ = cv2.Rodrigues(np.array(pose["rvec"], np.float64))
    cols, rows = pose["inner_corners"]
    sq = pose["square_mm"]
    bw, bh = (cols + 1) * sq, (rows + 1) * sq
    centre = np.array(pose["centre_mm"], np.float64)
    v, u = np.mgrid[0:cam.height, 0:cam.width].astype(np.float64)
    xu, yu = cam.undistort(u, v)
    n = R[:, 2]
    denom = n[0] * xu + n[1] * yu + n[2]
    lam = float(n @ centre) / denom
    px, py, pz = lam * xu - centre[0], lam * yu - centre[1], lam - centre[2]
    bx = R[0, 0] * px + R[1, 0] * py + R[2, 0] * pz + bw / 2
    by = R[0, 1] * px + R[1, 1] * py + R[2, 1] * pz + bh / 2
    margin = sq * 0.6
    on = (bx > -margin) & (bx < bw + margin) & (by > -margin) & (by < bh + margin)
    inner = (bx >= 0) & (bx < bw) & (by >= 0) & (by < bh)
    dark = ((np.floor(bx / sq) + np.floor(by / sq)) % 2 == 0) & inner
    board = np.where(dark, 28, 215).astype(np.uint8)
    scene[on] = board[on][:, None]
    return scene
