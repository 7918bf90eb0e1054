"""Geometric calibration: find a calibration target in views, solve the lens, guide the coverage.

A *view* is one image of a planar target (a checkerboard of ``cols x rows`` inner corners with
squares of ``square_mm``, or a ChArUco board where OpenCV has ``cv2.aruco``). From enough views in
varied poses, :func:`solve` fits a pinhole camera with radial distortion (``cv2.calibrateCamera``):
focal length (square pixels), principal point, ``k1`` and ``k2`` (``k3`` and the tangential terms
fixed at zero: industrial lenses are dominated by the first radial term, and freeing more terms
than the views support trades accuracy of ``k1`` for a lower residual). The result is a
:class:`LensProfile`, kept as JSON, and compared with the previous one by :func:`compare_profiles`.

Scale: ``mm_per_px`` is the object-side size of a pixel at the working distance,
``working_distance_mm / fx``; ``board_mm_per_px`` is measured directly, the square size over the
spacing of the undistorted corners, at the distance the target was held (median over views).

:class:`Coverage` tracks which cells of the field of view the target's corners have covered and how
varied the poses are, and says in words where the target should go next.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.core.errors import StationError
from engine.core.files import write_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CALIB_FLAGS = cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K3


class CalibrationError(StationError, ValueError):
    """The views cannot be calibrated; one sentence."""


# --------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class Pattern:
    """A planar calibration target: inner corners (columns x rows) and the square size in mm."""

    cols: int = 9
    rows: int = 6
    square_mm: float = 8.0
    kind: str = "checkerboard"  # or "charuco" (squares, not inner corners, are cols+1 x rows+1)
    aruco_dict: str = "DICT_4X4_50"

    @classmethod
    def parse(cls, text: str, square_mm: float, kind: str = "checkerboard") -> Pattern:
        """``"9x6"`` (inner corners, columns x rows) to a pattern."""
        try:
            c, r = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise CalibrationError(f"pattern {text!r} is not COLSxROWS of inner corners, like 9x6") from None
        if c < 2 or r < 2:
            raise CalibrationError(f"pattern {text!r} needs at least 2x2 inner corners")
        if not square_mm > 0:
            raise CalibrationError(f"the square size must be positive, got {square_mm} mm")
        if kind not in ("checkerboard", "charuco"):
            raise CalibrationError(f"unknown target kind {kind!r}; use checkerboard or charuco")
        if kind == "charuco" and not charuco_available():
            raise CalibrationError("this OpenCV has no ArUco module, so ChArUco boards cannot be read")
        return cls(c, r, float(square_mm), kind)

    @property
    def size(self) -> tuple[int, int]:
        return self.cols, self.rows

    def object_points(self) -> np.ndarray:
        """The inner corners on the target plane (z = 0), in mm, row by row."""
        obj = np.zeros((self.cols * self.rows, 3), np.float32)
        obj[:, :2] = np.mgrid[0:self.cols, 0:self.rows].T.reshape(-1, 2) * self.square_mm
        return obj

    def describe(self) -> str:
        return f"{self.kind} {self.cols}x{self.rows} inner corners, {self.square_mm:g} mm squares"


def charuco_available() -> bool:
    return hasattr(cv2, "aruco") and hasattr(cv2.aruco, "CharucoDetector")


def _charuco_board(p: Pattern) -> Any:
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, p.aruco_dict))
    return cv2.aruco.CharucoBoard((p.cols + 1, p.rows + 1), p.square_mm, p.square_mm * 0.7, d)


def charuco_image(p: Pattern, px_per_square: int = 60) -> np.ndarray:
    """A printable image of the ChArUco board (grey, uint8)."""
    board = _charuco_board(p)
    return board.generateImage(((p.cols + 1) * px_per_square, (p.rows + 1) * px_per_square))


@dataclass
class View:
    """Where the target's corners were found in one image: pixels and the matching target points."""

    image_points: np.ndarray  # (N, 1, 2) float32
    object_points: np.ndarray  # (N, 3) float32
    name: str = ""

    @property
    def centre(self) -> np.ndarray:
        return self.image_points.reshape(-1, 2).mean(0)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def find_target(image: np.ndarray, pattern: Pattern, name: str = "") -> View | None:
    """The target's corners in ``image`` (BGR or grey), or ``None`` when it is not (fully) in view."""
    grey = _grey(image)
    if pattern.kind == "charuco":
        return _find_charuco(grey, pattern, name)
    # The sector-based detector finds boards robustly but its corners lean on tilted boards (a bias of a tenth
    # of a pixel that costs about 1 % of focal length); the gradient refinement of cornerSubPix removes it.
    ok, corners = cv2.findChessboardCornersSB(grey, pattern.size)
    if not ok:
        ok, corners = cv2.findChessboardCorners(grey, pattern.size,
                                                flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not ok:
            return None
    corners = corners.astype(np.float32).reshape(-1, 1, 2)
    grid = corners.reshape(pattern.rows, pattern.cols, 2)
    spacing = min(float(np.linalg.norm(np.diff(grid, axis=1), axis=2).min()),
                  float(np.linalg.norm(np.diff(grid, axis=0), axis=2).min()))
    win = int(np.clip(spacing / 4, 2, 11))  # inside the square: the window must not reach the next corner
    corners = cv2.cornerSubPix(grey, corners, (win, win), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.001))
    return View(corners, pattern.object_points(), name)


def _find_charuco(grey: np.ndarray, pattern: Pattern, name: str) -> View | None:
    board = _charuco_board(pattern)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(grey)
    if ids is None or len(ids) < max(6, pattern.cols * pattern.rows // 3):
        return None
    obj = board.getChessboardCorners()[ids.ravel()].astype(np.float32)
    return View(corners.astype(np.float32).reshape(-1, 1, 2), obj, name)


# --------------------------------------------------------------------------- coverage


@dataclass
class Coverage:
    """Which cells of the field of view the target has covered, and how varied its tilts are."""

    width: int
    height: int
    cols: int = 4
    rows: int = 3
    counts: np.ndarray = field(default=None)  # type: ignore[assignment]
    tilts_deg: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = np.zeros((self.rows, self.cols), np.int32)

    def add(self, view: View) -> None:
        pts = view.image_points.reshape(-1, 2)
        cx = np.clip((pts[:, 0] * self.cols / self.width).astype(int), 0, self.cols - 1)
        cy = np.clip((pts[:, 1] * self.rows / self.height).astype(int), 0, self.rows - 1)
        hit = np.zeros_like(self.counts, bool)
        hit[cy, cx] = True
        self.counts += hit

    @property
    def share(self) -> float:
        """Share of the cells with at least one view's corners in them."""
        return float((self.counts > 0).mean())

    def add_tilt(self, degrees: float) -> None:
        self.tilts_deg.append(float(degrees))

    @property
    def tilted_views(self) -> int:
        return sum(1 for t in self.tilts_deg if t >= 10.0)

    def missing(self) -> list[str]:
        """Names of the uncovered cells, such as 'top left'."""
        names = []
        for r in range(self.rows):
            for c in range(self.cols):
                if self.counts[r, c] == 0:
                    names.append(f"{_row_name(r, self.rows)} {_col_name(c, self.cols)}")
        return names

    def advice(self, views: int, min_views: int) -> str:
        """One sentence for the technician: where the target should go next."""
        miss = self.missing()
        if miss:
            where = ", ".join(miss[:3]) + (f" and {len(miss) - 3} more" if len(miss) > 3 else "")
            return f"Move the target to the {where} of the picture."
        if self.tilted_views < 3:
            return "Tilt the target (about 20 degrees) towards the camera in a few views."
        if views < min_views:
            return f"Keep going: {min_views - views} more views in different places."
        return "The field of view is covered: the lens can be solved."


def _row_name(r: int, n: int) -> str:
    return ("top", "middle", "bottom")[0 if r == 0 else 2 if r == n - 1 else 1]


def _col_name(c: int, n: int) -> str:
    if c == 0:
        return "left"
    if c == n - 1:
        return "right"
    return "centre-left" if c < n / 2 else "centre-right"


# --------------------------------------------------------------------------- the lens


@dataclass
class LensProfile:
    """A solved lens on a camera of a given size (pixels), with how and by whom it was measured."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    dist: list[float]  # OpenCV order: k1, k2, p1, p2, k3
    rms_px: float | None = None
    views: int = 0
    mm_per_px: float | None = None  # at the working distance
    board_mm_per_px: float | None = None  # measured on the target, at the distance it was held
    working_distance_mm: float | None = None
    pattern: str = ""
    source: str = ""  # "calibrated", "simulator nominal lens", ...
    who: str = ""
    reason: str = ""
    created_utc: str = ""
    per_view_rms_px: list[float] = field(default_factory=list)
    rejected_views: int = 0  # views dropped as outliers before the final solution

    @property
    def k1(self) -> float:
        return float(self.dist[0]) if self.dist else 0.0

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LensProfile:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: Path) -> Path:
        write_json_atomic(Path(path), self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> LensProfile:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as e:
            raise CalibrationError(f"{path} is not a lens profile ({e})") from None


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary name, fsync, rename: a crash leaves the old file or the new one."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def tilt_deg(rvec: np.ndarray) -> float:
    """Angle between the target's normal and the optical axis."""
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    return float(math.degrees(math.acos(min(1.0, abs(R[2, 2])))))


def solve(views: Sequence[View], image_size: tuple[int, int], pattern: Pattern,
          working_distance_mm: float | None = None, min_views: int = 5) -> tuple[LensProfile, list[float]]:
    """Fit the lens to ``views`` of ``image_size`` (width, height); also the tilt of each view in degrees."""
    if len(views) < min_views:
        raise CalibrationError(f"the target was found in {len(views)} views; at least {min_views} are needed")
    w, h = image_size
    views = list(views)
    rejected = 0
    # A view whose corners were found wrongly (a partly hidden or mis-ordered board) pulls the whole solution;
    # views whose own error is far above the others' are dropped and the lens solved again (up to 3 rounds).
    for _ in range(4):
        rms, K, dist, rvecs, tvecs = _calibrate(views, w, h)
        per_view = [_view_rms(v, rv, tv, K, dist) for v, rv, tv in zip(views, rvecs, tvecs)]
        limit = max(3.0 * float(np.median(per_view)), 0.75)
        keep = [i for i, e in enumerate(per_view) if e <= limit]
        if len(keep) == len(views) or len(keep) < min_views:
            break
        rejected += len(views) - len(keep)
        views = [views[i] for i in keep]
    board_scale = []
    for v, rv, tv in zip(views, rvecs, tvecs):
        if v.object_points.shape[0] == pattern.cols * pattern.rows:
            und = cv2.undistortPoints(v.image_points, K, dist, P=K).reshape(pattern.rows, pattern.cols, 2)
            spacing = np.concatenate([np.linalg.norm(np.diff(und, axis=1), axis=2).ravel(),
                                      np.linalg.norm(np.diff(und, axis=0), axis=2).ravel()])
            board_scale.append(pattern.square_mm / float(np.median(spacing)))
    fx, fy = float(K[0, 0]), float(K[1, 1])
    profile = LensProfile(
        width=w, height=h, fx=fx, fy=fy, cx=float(K[0, 2]), cy=float(K[1, 2]),
        dist=[float(v) for v in np.asarray(dist).ravel()[:5]], rms_px=float(rms), views=len(views),
        mm_per_px=(working_distance_mm / fx) if working_distance_mm else None,
        board_mm_per_px=float(np.median(board_scale)) if board_scale else None,
        working_distance_mm=working_distance_mm, pattern=pattern.describe(), source="calibrated",
        created_utc=utc_now(), per_view_rms_px=[round(e, 4) for e in per_view], rejected_views=rejected)
    return profile, [tilt_deg(r) for r in rvecs]


def _calibrate(views: Sequence[View], w: int, h: int) -> tuple:
    f0 = max(w, h)
    K0 = np.array([[f0, 0, (w - 1) / 2], [0, f0, (h - 1) / 2], [0, 0, 1]], np.float64)
    try:
        return cv2.calibrateCamera([v.object_points for v in views], [v.image_points for v in views], (w, h), K0,
                                   np.zeros(5), flags=CALIB_FLAGS | cv2.CALIB_USE_INTRINSIC_GUESS)
    except cv2.error as e:
        raise CalibrationError(f"OpenCV could not solve the lens ({str(e).strip().splitlines()[-1][:100]})") from None


def _view_rms(v: View, rvec: np.ndarray, tvec: np.ndarray, K: np.ndarray, dist: np.ndarray) -> float:
    proj, _ = cv2.projectPoints(v.object_points, rvec, tvec, K, dist)
    d = proj.reshape(-1, 2) - v.image_points.reshape(-1, 2)
    return float(np.sqrt((d * d).sum(1).mean()))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- comparison


COMPARED = (("fx", "focal length fx", "px"), ("cx", "principal point x", "px"), ("cy", "principal point y", "px"),
            ("k1", "radial distortion k1", ""), ("k2", "radial distortion k2", ""),
            ("mm_per_px", "scale at working distance", "mm/px"))


def compare_profiles(old: LensProfile | None, new: LensProfile) -> list[dict[str, Any]]:
    """One row per compared quantity: name, old, new, change (absolute, and relative where it means something)."""
    rows = []
    for key, label, unit in COMPARED:
        nv = _value(new, key)
        ov = _value(old, key) if old is not None else None
        row: dict[str, Any] = {"key": key, "label": label, "unit": unit, "old": ov, "new": nv,
                               "delta": None, "relative": None}
        if ov is not None and nv is not None:
            row["delta"] = nv - ov
            if key in ("fx", "mm_per_px") and ov:
                row["relative"] = (nv - ov) / ov
        rows.append(row)
    if old is not None and (old.width, old.height) != (new.width, new.height):
        rows.append({"key": "size", "label": "image size", "unit": "px", "old": f"{old.width}x{old.height}",
                     "new": f"{new.width}x{new.height}", "delta": None, "relative": None})
    return rows


def _value(p: LensProfile, key: str) -> float | None:
    if key == "k1":
        return p.k1
    if key == "k2":
        return float(p.dist[1]) if len(p.dist) > 1 else 0.0
    v = getattr(p, key)
    return None if v is None else float(v)


# --------------------------------------------------------------------------- a folder of images


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def calibrate_images(paths: Iterable[Path], pattern: Pattern, min_views: int = 5,
                     working_distance_mm: float | None = None) -> tuple[LensProfile, dict[str, Any]]:
    """Solve the lens from image files; also which files the target was found in."""
    views: list[View] = []
    size: tuple[int, int] | None = None
    used, skipped = [], []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            skipped.append({"file": p.name, "why": "not a readable image"})
            continue
        if size is None:
            size = (img.shape[1], img.shape[0])
        elif size != (img.shape[1], img.shape[0]):
            skipped.append({"file": p.name, "why": f"size {img.shape[1]}x{img.shape[0]} differs from {size[0]}x{size[1]}"})
            continue
        v = find_target(img, pattern, p.name)
        if v is None:
            skipped.append({"file": p.name, "why": "target not found"})
            continue
        views.append(v)
        used.append(p.name)
    if size is None:
        raise CalibrationError("none of the files is a readable image")
    if len(views) < min_views:
        raise CalibrationError(f"the {pattern.cols}x{pattern.rows} target was found in {len(views)} of "
                               f"{len(used) + len(skipped)} images; at least {min_views} are needed")
    profile, tilts = solve(views, size, pattern, working_distance_mm, min_views)
    cov = Coverage(*size)
    for v in views:
        cov.add(v)
    return profile, {"used": used, "skipped": skipped, "coverage": round(cov.share, 3),
                     "tilts_deg": [round(t, 1) for t in tilts]}


def draw_view(image: np.ndarray, view: View | None, pattern: Pattern, coverage: Coverage | None = None) -> np.ndarray:
    """A preview: the coverage grid (covered cells tinted green) and the found corners."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = out.shape[:2]
    if coverage is not None:
        overlay = out.copy()
        for r in range(coverage.rows):
            for c in range(coverage.cols):
                x0, x1 = c * w // coverage.cols, (c + 1) * w // coverage.cols
                y0, y1 = r * h // coverage.rows, (r + 1) * h // coverage.rows
                if coverage.counts[r, c] > 0:
                    cv2.rectangle(overlay, (x0, y0), (x1, y1), (60, 200, 60), -1)
                cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (200, 200, 200), 1)
        out = cv2.addWeighted(overlay, 0.25, out, 0.75, 0)
    if view is not None:
        if view.image_points.shape[0] == pattern.cols * pattern.rows:
            cv2.drawChessboardCorners(out, pattern.size, view.image_points, True)
        else:
            for x, y in view.image_points.reshape(-1, 2):
                cv2.circle(out, (int(x), int(y)), 3, (0, 255, 0), -1)
    return out


def rough_tilt(view: View, w: int, h: int, previous: LensProfile | None = None) -> float:
    """The target's tilt in degrees, with the previous lens (or a guess) standing in for the one being solved."""
    p = previous
    if p is not None and (p.width, p.height) == (w, h):
        K, dist = p.matrix, np.asarray(p.dist, np.float64)
    else:
        f = 1.5 * max(w, h)
        K, dist = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]), np.zeros(5)
    ok, rvec, _ = cv2.solvePnP(view.object_points, view.image_points, K, dist)
    return tilt_deg(rvec) if ok else 0.0


def pose_key(view: View, w: int, h: int) -> np.ndarray:
    """Where the target is, how big, how turned and how foreshortened: views too alike add nothing."""
    pts = view.image_points.reshape(-1, 2)
    c = pts.mean(0)
    hull = cv2.convexHull(pts.astype(np.float32))
    area = float(cv2.contourArea(hull))
    rect = cv2.minAreaRect(pts.astype(np.float32))
    (rw, rh) = rect[1]
    return np.array([c[0] / w, c[1] / h, math.sqrt(max(area, 1.0)) / math.hypot(w, h),
                     (rect[2] % 90) / 90.0, area / max(1.0, rw * rh)])
