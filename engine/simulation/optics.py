"""The simulated line's optics: a pinhole lens with one radial distortion term, and the camera it makes.

The geometry is given for a frame :data:`REFERENCE_WIDTH` pixels wide and scales with the frame. The nominal
lens sees a 128 mm wide field at :data:`WORKING_DISTANCE_MM`; the replacement lens of the lens-change scenario
has a longer focal length, a shifted centre, barrel distortion and defocus, which is why a checkerboard shown
to the camera calibrates it the way a real lens would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from engine.core.frame import Box

REFERENCE_WIDTH = 1280  # geometry below is given for this width and scales with the frame
WORKING_DISTANCE_MM = 300.0


def mm_per_px(width: int) -> float:
    """Object-side pixel size of the nominal lens: a 128 mm wide field of view."""
    return 128.0 / width


@dataclass(frozen=True)
class Lens:
    """Pinhole lens with one radial distortion term, in frame pixels."""

    focal_scale: float = 1.0  # focal length relative to the nominal lens
    shift_x: float = 0.0  # principal point offset, reference-width pixels
    shift_y: float = 0.0
    k1: float = 0.0
    defocus_sigma: float = 0.0  # Gaussian blur, reference-width pixels
    vignetting: float = 0.16  # relative fall-off at the corners
    name: str = "lens-A"

    @property
    def is_nominal_geometry(self) -> bool:
        return self.focal_scale == 1.0 and self.shift_x == 0 and self.shift_y == 0 and self.k1 == 0


NOMINAL_LENS = Lens()
REPLACEMENT_LENS = Lens(focal_scale=1.06, shift_x=14.0, shift_y=-9.0, k1=-0.5, defocus_sigma=1.6,
                        vignetting=0.24, name="lens-B")


@dataclass(frozen=True)
class Camera:
    """Intrinsics of a lens on a camera of a given size, in frame pixels."""

    width: int
    height: int
    fx: float
    cx: float
    cy: float
    k1: float

    @classmethod
    def for_lens(cls, lens: Lens, width: int, height: int) -> Camera:
        s = width / REFERENCE_WIDTH
        f0 = WORKING_DISTANCE_MM / mm_per_px(width)
        return cls(width, height, f0 * lens.focal_scale, (width - 1) / 2 + lens.shift_x * s,
                   (height - 1) / 2 + lens.shift_y * s, lens.k1)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fx, self.cy], [0, 0, 1]], dtype=np.float64)

    def distort(self, xu: np.ndarray, yu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised undistorted coordinates to pixels."""
        r2 = xu * xu + yu * yu
        f = 1 + self.k1 * r2
        return self.fx * xu * f + self.cx, self.fx * yu * f + self.cy

    def undistort(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels to normalised undistorted coordinates (fixed-point iteration)."""
        xd = (u - self.cx) / self.fx
        yd = (v - self.cy) / self.fx
        xu, yu = xd.copy(), yd.copy()
        for _ in range(8):
            f = 1 + self.k1 * (xu * xu + yu * yu)
            xu, yu = xd / f, yd / f
        return xu, yu


def lens_map(lens: Lens, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps that show a scene laid out for the nominal lens through ``lens``."""
    cam = Camera.for_lens(lens, width, height)
    nominal = Camera.for_lens(NOMINAL_LENS, width, height)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    xu, yu = cam.undistort(u, v)
    mx = (nominal.fx * xu + nominal.cx).astype(np.float32)
    my = (nominal.fx * yu + nominal.cy).astype(np.float32)
    return cv2.convertMaps(mx, my, cv2.CV_16SC2)


def warp_box(box: Box, cam: Camera) -> Box:
    """A scene box seen through ``cam`` (corners and edge midpoints, then their bounds, clipped to the frame)."""
    nominal = Camera.for_lens(NOMINAL_LENS, cam.width, cam.height)
    xs = np.array([box.x0, box.x1, box.x0, box.x1, (box.x0 + box.x1) / 2, (box.x0 + box.x1) / 2, box.x0, box.x1])
    ys = np.array([box.y0, box.y0, box.y1, box.y1, box.y0, box.y1, (box.y0 + box.y1) / 2, (box.y0 + box.y1) / 2])
    u, v = cam.distort((xs - nominal.cx) / nominal.fx, (ys - nominal.cy) / nominal.fx)
    x0, x1 = max(0.0, float(u.min())), min(cam.width - 1.0, float(u.max()))
    y0, y1 = max(0.0, float(v.min())), min(cam.height - 1.0, float(v.max()))
    if x1 <= x0 or y1 <= y0:
        return replace(box, x0=0.0, y0=0.0, x1=0.0, y1=0.0)
    return replace(box, x0=x0, y0=y0, x1=x1, y1=y1)
