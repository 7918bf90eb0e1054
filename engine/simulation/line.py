"""The simulated production line: the station's built-in camera and its ground truth.

Parts ride a conveyor across the field of view; some carry defects (scratches,
dents, contamination) of varied size, contrast and position, including faint
boundary cases. Every frame is a pure function of ``(seed, scenario, size, slot)``,
where a *slot* is one camera frame period: the same seed gives the same frames.

Slow conditions follow a simulated line clock, ``t = slot * dt`` seconds, so one
frame can stand for minutes or hours of line time. The optics follow a pinhole
camera with radial distortion, which is why a checkerboard shown to the camera
calibrates it the way a real lens would.

Rendering cost per frame is a belt copy, a few sprite blends, a gain-map multiply
and a noise add (plus a remap and a blur after a lens change); part sprites are
drawn once and cached. ``inspection-station bench sim`` measures it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import cv2
import numpy as np

from engine.core.frame import Box, DefectTruth, GroundTruth

SIMULATOR_VERSION = "1.1"
DEFECT_CLASSES: tuple[str, ...] = ("scratch", "dent", "contamination")
EPOCH0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the simulated line's clock starts here
REFERENCE_WIDTH = 1280  # geometry below is given for this width and scales with the frame


# --------------------------------------------------------------------------- conditions


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
class Conditions:
    """The state of lamp, optics and product mix at one moment of line time."""

    lamp_gain: float = 1.0  # lamp output relative to new
    colour_temp_k: float = 5600.0
    lateral_gradient: float = 0.0  # left-to-right illumination slope across the frame
    lens: Lens = NOMINAL_LENS
    variant_share: float = 0.0  # share of parts of the new product variant
    frozen: bool = False  # the camera repeats its last image
    dropout: bool = False  # the camera delivers nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "lamp_gain": round(self.lamp_gain, 4),
            "colour_temp_k": round(self.colour_temp_k, 1),
            "lateral_gradient": round(self.lateral_gradient, 4),
            "lens": self.lens.name,
            "defocus_sigma": self.lens.defocus_sigma,
            "variant_share": round(self.variant_share, 4),
        }


def _ramp(x: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, linear between."""
    if x <= start:
        return 0.0
    if x >= end:
        return 1.0
    return (x - start) / (end - start)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    dt: float  # simulated line seconds per frame slot
    conditions_at: Callable[[int, float], Conditions]  # (slot, t) -> conditions


HOUR = 3600.0
DAY = 24 * HOUR


def _nominal(slot: int, t: float) -> Conditions:
    return Conditions()


def _aging(t: float, span: float) -> dict[str, float]:
    a = _ramp(t, 0.0, span)
    return {"lamp_gain": 1.0 - 0.38 * a ** 0.8, "colour_temp_k": 5600.0 - 1500.0 * a,
            "lateral_gradient": -0.22 * a}


def _lighting_aging(slot: int, t: float) -> Conditions:
    return Conditions(**_aging(t, 60 * DAY))


LENS_CHANGE_AT = 240  # slot of the lens swap in the lens-change scenario


def _lens_change(slot: int, t: float) -> Conditions:
    return Conditions(lens=REPLACEMENT_LENS if slot >= LENS_CHANGE_AT else NOMINAL_LENS)


def _new_variant(slot: int, t: float) -> Conditions:
    return Conditions(variant_share=0.5 * _ramp(t, 12 * HOUR, 24 * HOUR))


DROPOUT_FROZEN = (300, 330)  # slots where the camera repeats its last image
DROPOUT_NONE = (330, 450)  # slots where it delivers nothing


def _camera_dropout(slot: int, t: float) -> Conditions:
    return Conditions(frozen=DROPOUT_FROZEN[0] <= slot < DROPOUT_FROZEN[1],
                      dropout=DROPOUT_NONE[0] <= slot < DROPOUT_NONE[1])


MIXED_EVENTS = {"frozen": (100, 110), "dropout": (110, 140), "lens_change": 200,
                "variant_from": 300, "variant_full": 450}


def _mixed(slot: int, t: float) -> Conditions:
    e = MIXED_EVENTS
    return Conditions(
        **_aging(t, 500 * 600.0 * 1.2),
        lens=REPLACEMENT_LENS if slot >= e["lens_change"] else NOMINAL_LENS,
        variant_share=0.4 * _ramp(slot, e["variant_from"], e["variant_full"]),
        frozen=e["frozen"][0] <= slot < e["frozen"][1],
        dropout=e["dropout"][0] <= slot < e["dropout"][1],
    )


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("nominal", "stable lamp, optics and product", 1 / 30, _nominal),
    Scenario("lighting-aging", "lamp output decays by 38% and warms from 5600 K to 4100 K over 60 days "
             "(30 min of line time per frame)", 1800.0, _lighting_aging),
    Scenario("lens-change", f"the lens is replaced at frame slot {LENS_CHANGE_AT}: longer focal length, "
             "shifted centre, barrel distortion, defocus (1 min per frame)", 60.0, _lens_change),
    Scenario("new-variant", "a blue anodised variant with a printed label appears after 12 h and reaches "
             "half the parts at 24 h (5 min per frame)", 300.0, _new_variant),
    Scenario("camera-dropout", f"the camera repeats one image for slots {DROPOUT_FROZEN[0]}-{DROPOUT_FROZEN[1]}, "
             f"then delivers nothing until slot {DROPOUT_NONE[1]} (1 s per frame)", 1.0, _camera_dropout),
    Scenario("mixed", "all of the above in one run: frozen and lost camera at slots 100-140, lens change at 200, "
             "new variant from 300, lamp ageing throughout (10 min per frame)", 600.0, _mixed),
)}


# --------------------------------------------------------------------------- geometry


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


WORKING_DISTANCE_MM = 300.0


def mm_per_px(width: int) -> float:
    """Object-side pixel size of the nominal lens: a 128 mm wide field of view."""
    return 128.0 / width


# --------------------------------------------------------------------------- parts


@dataclass
class _Sprite:
    bgr: np.ndarray  # float32 h x w x 3, before lighting
    alpha: np.ndarray  # float32 h x w, 1 on the part
    defects: list[tuple[int, str, np.ndarray, float, float, bool]] = field(default_factory=list)
    # (class id, class name, visible extent in sprite px as [[x0, y0], [x1, y1]], contrast, size, faint)


def _colour_temperature_gains(kelvin: float) -> np.ndarray:
    """BGR gains of a lamp at ``kelvin`` on a camera white-balanced for 5600 K."""

    def rgb(k: float) -> np.ndarray:
        t = k / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
        return np.array([b, g, r], dtype=np.float64)

    g = rgb(kelvin) / rgb(5600.0)
    return g / g[1]


class LineSimulator:
    """Renders frame slots of the simulated line. Not thread-safe: one per source."""

    def __init__(self, seed: int = 0, scenario: str = "nominal", width: int = 1280, height: int = 1024,
                 dt: float | None = None) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if not (64 <= width <= 8192 and 64 <= height <= 8192):
            raise ValueError(f"frame size {width}x{height} is outside 64..8192 pixels")
        self.seed = int(seed)
        self.scenario = SCENARIOS[scenario]
        self.width, self.height = int(width), int(height)
        self.dt = float(dt) if dt is not None else self.scenario.dt
        if self.dt <= 0:
            raise ValueError("dt must be positive")
        self.scale = self.width / REFERENCE_WIDTH
        s = self.scale
        # Conveyor geometry: a belt between two rails, moving left to right.
        self.belt_y0 = int(round(0.09 * self.height))
        self.belt_y1 = int(round(0.91 * self.height))
        self.part_w = max(24, int(round(300 * s)))
        self.part_h = max(20, int(round(230 * s)))
        self.speed = max(2, int(round(34 * s)))  # px per slot
        self.spacing = int(math.ceil(1.45 * self.part_w / self.speed))  # slots between parts
        self.seam_period = max(64, int(round(900 * s)))
        self._belt = self._make_belt()
        self._noise = self._make_noise()
        self._sprites: OrderedDict[tuple, _Sprite] = OrderedDict()
        self._vignetting_key: float | None = None
        self._vignetting = np.empty(0, np.float32)
        self._gain_key: tuple | None = None
        self._gain_field = np.empty(0, np.float32)
        self._blurred_belt: dict[float, np.ndarray] = {}
        self._lens_maps: dict[Lens, tuple[np.ndarray, np.ndarray]] = {}
        self._textures = {v: self._make_texture(v) for v in (0, 1)}

    # ----------------------------------------------------------------- public

    def time_of(self, slot: int) -> float:
        return slot * self.dt

    def conditions(self, slot: int) -> Conditions:
        return self.scenario.conditions_at(slot, self.time_of(slot))

    def render(self, slot: int, show: str | None = None) -> tuple[np.ndarray, GroundTruth]:
        """The BGR image and ground truth of one frame slot.

        ``show`` is ``None`` for production, ``"checkerboard"`` for the calibration
        target in a pose that depends on the slot, or ``"golden"`` for the golden parts.
        """
        cond = self.conditions(slot)
        cam = Camera.for_lens(cond.lens, self.width, self.height)
        sigma = round(cond.lens.defocus_sigma * self.scale, 3)
        if show == "checkerboard":
            scene, defects, board = self._render_checkerboard(slot, cam), [], self.board_pose(slot)
            if sigma > 0:
                cv2.GaussianBlur(scene, (0, 0), sigma, dst=scene)
        else:
            # Defocus is applied to the belt and to each cached sprite, not to every frame.
            board = None
            scene, defects = self._render_parts(slot, cond, golden=(show == "golden"), sigma=sigma)
            if not cond.lens.is_nominal_geometry:
                mx, my = self._lens_map(cond.lens)
                # The scene is already defocused by more than a pixel: nearest-neighbour sampling of
                # band-limited content costs a third of bilinear and differs from it by noise-level amounts.
                interp = cv2.INTER_NEAREST if sigma >= 1.0 else cv2.INTER_LINEAR
                scene = cv2.remap(scene, mx, my, interp, borderMode=cv2.BORDER_REFLECT)
                defects = [replace(d, box=self._warp_box(d.box, cam)) for d in defects]
                defects = [d for d in defects if d.box.area > 0]
        image = self._light(scene, cond, slot)
        conditions = cond.to_dict()
        conditions.update(scenario=self.scenario.name, slot=slot, sim_time_s=round(self.time_of(slot), 3),
                          simulator_version=SIMULATOR_VERSION, show=show or "production")
        if board is not None:
            conditions["board"] = board
        return image, GroundTruth(tuple(defects), conditions)

    # ----------------------------------------------------------------- the static scene

    def _make_belt(self) -> np.ndarray:
        """Belt texture, one seam period wider than the frame, uint8 BGR."""
        rng = np.random.default_rng([self.seed, 3])
        h, w = self.height, self.width + self.seam_period
        belt = np.full((h, w), 62.0, np.float32)
        grain = rng.normal(0, 5.0, (h // 2 + 1, w // 2 + 1)).astype(np.float32)
        grain = cv2.resize(cv2.GaussianBlur(grain, (0, 0), 1.0), (w, h), interpolation=cv2.INTER_LINEAR)
        belt += grain
        seam_w = max(2, int(round(6 * self.scale)))
        for x in range(0, w, self.seam_period):
            belt[:, x:x + seam_w] += 18.0
        belt = np.repeat(belt[:, :, None], 3, axis=2)
        belt *= np.array([1.0, 1.0, 1.04], np.float32)  # a slightly warm black rubber
        rail = np.array([150.0, 152.0, 155.0], np.float32)
        ramp = np.linspace(0.75, 1.05, self.belt_y0, dtype=np.float32)[:, None, None]
        belt[: self.belt_y0] = rail * ramp
        belt[self.belt_y1:] = rail * ramp[::-1][: h - self.belt_y1]
        return np.clip(np.round(belt), 0, 255).astype(np.uint8)

    def _make_noise(self) -> np.ndarray:
        """A bank of sensor noise, one frame plus a margin; each frame reads it at an offset."""
        rng = np.random.default_rng([self.seed, 2])
        m = 32
        noise = rng.normal(0.0, 2.2, (self.height + m, self.width + m, 3))
        return np.clip(np.round(noise), -127, 127).astype(np.int16)

    def _make_texture(self, variant: int) -> np.ndarray:
        """Surface texture of a product variant: brushed steel (0) or blasted anodised (1)."""
        rng = np.random.default_rng([self.seed, 5, variant])
        h, w = self.part_h + 2 * SPRITE_PAD, self.part_w + 2 * SPRITE_PAD
        if variant == 0:
            streaks = rng.normal(0, 6.0, (h, 1)).astype(np.float32) * np.ones((1, w), np.float32)
            streaks += rng.normal(0, 3.0, (h, w)).astype(np.float32)
            tex = cv2.GaussianBlur(streaks, (0, 0), sigmaX=9 * self.scale + 0.5, sigmaY=0.6)
        else:
            tex = cv2.GaussianBlur(rng.normal(0, 7.0, (h, w)).astype(np.float32), (0, 0), 1.2)
        return tex

    # ----------------------------------------------------------------- parts

    def _part_rng(self, part: int, golden: bool, stream: int) -> np.random.Generator:
        # Golden parts are physical objects: the same whatever the station's seed.
        key = [7919, 11, part % GOLDEN_COUNT] if golden else [self.seed, 1, part]
        return np.random.default_rng([*key, stream])

    def _part_layout(self, part: int, golden: bool) -> tuple[int, int]:
        """Entry slot and vertical centre of a part."""
        rng = self._part_rng(part, golden, 0)
        jitter = int(rng.integers(0, max(1, self.spacing // 4)))
        y_lo = self.belt_y0 + self.part_h // 2 + 4
        y_hi = self.belt_y1 - self.part_h // 2 - 4
        yc = int(rng.integers(y_lo, max(y_lo + 1, y_hi)))
        return part * self.spacing + jitter, yc

    def _variant(self, part: int, cond: Conditions, golden: bool) -> int:
        if golden:
            return 0
        u = np.random.default_rng([self.seed, 6, part]).random()
        return int(u < cond.variant_share)

    def _belt_at(self, slot: int, sigma: float) -> np.ndarray:
        belt = self._belt
        if sigma > 0:
            belt = self._blurred_belt.get(sigma)
            if belt is None:
                belt = self._blurred_belt[sigma] = cv2.GaussianBlur(self._belt, (0, 0), sigma)
        offset = (-slot * self.speed) % self.seam_period
        return belt[:, offset:offset + self.width].copy()

    def _render_parts(self, slot: int, cond: Conditions, golden: bool,
                      sigma: float) -> tuple[np.ndarray, list[DefectTruth]]:
        scene = self._belt_at(slot, sigma)
        defects: list[DefectTruth] = []
        span = int(math.ceil((self.width + self.part_w) / self.speed)) + 1
        first = max(0, (slot - span) // self.spacing - 1)
        for part in range(first, slot // self.spacing + 1):
            start, yc = self._part_layout(part, golden)
            x0 = -self.part_w + (slot - start) * self.speed
            if x0 <= -self.part_w or x0 >= self.width:
                continue
            variant = self._variant(part, cond, golden)
            sprite = self._sprite(part, variant, golden, sigma)
            y0 = yc - sprite.alpha.shape[0] // 2
            self._blend(scene, sprite, x0, y0)
            for cid, cname, pts, contrast, size, faint in sprite.defects:
                p = pts + (x0, y0)
                full = Box(float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()),
                           float(p[:, 1].max()), cid, cname)
                box = Box(max(0.0, full.x0), max(0.0, full.y0), min(self.width - 1.0, full.x1),
                          min(self.height - 1.0, full.y1), cid, cname)
                if box.width <= 0 or box.height <= 0 or box.area < 0.5 * full.area:
                    continue  # mostly outside the frame: not a visible defect
                defects.append(DefectTruth(box, part if not golden else -1 - part % GOLDEN_COUNT,
                                           contrast, size, faint))
        return scene, defects

    @staticmethod
    def _blend(scene: np.ndarray, sprite: _Sprite, x0: int, y0: int) -> None:
        h, w = sprite.alpha.shape
        H, W = scene.shape[:2]
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        dx1, dy1 = min(W, x0 + w), min(H, y0 + h)
        if dx1 <= dx0 or dy1 <= dy0:
            return
        roi = scene[dy0:dy1, dx0:dx1]
        under = roi.astype(np.float32)
        src = sprite.bgr[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        a = sprite.alpha[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0, None]
        under += (src - under) * a
        np.clip(under, 0, 255, out=under)
        roi[...] = (under + 0.5).astype(np.uint8)

    def _sprite(self, part: int, variant: int, golden: bool, sigma: float) -> _Sprite:
        key = (part % GOLDEN_COUNT if golden else part, variant, golden, sigma)
        sp = self._sprites.get(key)
        if sp is None:
            sp = self._make_sprite(part, variant, golden)
            if sigma > 0:
                sp = _Sprite(cv2.GaussianBlur(sp.bgr, (0, 0), sigma), cv2.GaussianBlur(sp.alpha, (0, 0), sigma),
                             sp.defects)
            self._sprites[key] = sp
            while len(self._sprites) > 24:
                self._sprites.popitem(last=False)
        else:
            self._sprites.move_to_end(key)
        return sp

    def _make_sprite(self, part: int, variant: int, golden: bool) -> _Sprite:
        s = self.scale
        rng = self._part_rng(part, golden, 1)
        h, w = self.part_h, self.part_w
        pad = SPRITE_PAD
        H, W = h + 2 * pad, w + 2 * pad
        alpha = np.zeros((H, W), np.float32)
        r = int(round(26 * s)) if variant == 0 else int(round(60 * s))
        cv2.rectangle(alpha, (pad + r, pad), (pad + w - r, pad + h), 1.0, -1, cv2.LINE_AA)
        cv2.rectangle(alpha, (pad, pad + r), (pad + w, pad + h - r), 1.0, -1, cv2.LINE_AA)
        for cx, cy in ((pad + r, pad + r), (pad + w - r, pad + r), (pad + r, pad + h - r), (pad + w - r, pad + h - r)):
            cv2.circle(alpha, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
        tex = self._textures[variant][:H, :W]
        if variant == 0:
            base = np.array([172.0, 174.0, 178.0], np.float32)
        else:
            base = np.array([150.0, 96.0, 52.0], np.float32)  # BGR: anodised blue
        shade = np.linspace(1.06, 0.92, H, dtype=np.float32)[:, None] * np.linspace(0.97, 1.03, W, dtype=np.float32)
        bgr = base * shade[:, :, None] + tex[:, :, None]
        keep_out = np.zeros((H, W), np.uint8)  # where defects are not placed: holes, label
        if variant == 0:  # four mounting holes
            hr = max(3, int(round(12 * s)))
            for cx, cy in ((pad + 2 * r, pad + 2 * r), (pad + w - 2 * r, pad + 2 * r),
                           (pad + 2 * r, pad + h - 2 * r), (pad + w - 2 * r, pad + h - 2 * r)):
                cv2.circle(alpha, (cx, cy), hr, 0.0, -1, cv2.LINE_AA)
                cv2.circle(keep_out, (cx, cy), 2 * hr, 1, -1)
        else:  # a printed label with a bar code
            lx0, ly0 = pad + int(0.18 * w), pad + int(0.25 * h)
            lx1, ly1 = pad + int(0.62 * w), pad + int(0.62 * h)
            bgr[ly0:ly1, lx0:lx1] = (226.0, 230.0, 232.0)
            bx = lx0 + 6
            brng = np.random.default_rng([self.seed, 9, 1])
            while bx < lx1 - 8:
                bw = int(brng.integers(1, 4)) * max(1, int(round(s * 2)))
                bgr[ly0 + 8:ly1 - 14, bx:bx + bw] = 30.0
                bx += bw + int(brng.integers(1, 4)) * max(1, int(round(s * 2)))
            keep_out[ly0 - 6:ly1 + 6, lx0 - 6:lx1 + 6] = 1
        edge = cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        bgr -= edge[:, :, None] * 40.0
        sprite = _Sprite(bgr, alpha)
        if golden:
            n_defects = GOLDEN_DEFECTS[part % GOLDEN_COUNT]
        else:
            n_defects = int(rng.choice([0, 1, 2, 3], p=[0.5, 0.3, 0.15, 0.05]))
        margin = int(round(30 * s))
        for k in range(n_defects):
            cid = k if golden else int(rng.integers(0, len(DEFECT_CLASSES)))
            for _ in range(20):
                cx = int(rng.integers(pad + margin, pad + w - margin))
                cy = int(rng.integers(pad + margin, pad + h - margin))
                if not keep_out[cy, cx]:
                    break
            self._draw_defect(sprite, rng, cid, cx, cy, golden)
        sprite.bgr = np.clip(sprite.bgr, 0, 255)
        return sprite

    def _draw_defect(self, sp: _Sprite, rng: np.random.Generator, cid: int, cx: int, cy: int, golden: bool) -> None:
        s = self.scale
        faint = (not golden) and rng.random() < 0.12
        H, W = sp.alpha.shape
        mask = np.zeros((H, W), np.float32)
        if cid == 0:  # scratch: a thin, slightly curved line, darker or brighter than the surface
            length = (rng.uniform(18, 34) if faint else rng.uniform(35, 130)) * s
            angle = rng.uniform(0, math.pi)
            bend = rng.uniform(-0.25, 0.25)
            n = 12
            ts = np.linspace(-0.5, 0.5, n)
            dx, dy = math.cos(angle), math.sin(angle)
            pts = np.stack([cx + ts * length * dx - bend * length * (ts ** 2 - 0.25) * dy,
                            cy + ts * length * dy + bend * length * (ts ** 2 - 0.25) * dx], 1)
            thick = max(1, int(round(rng.uniform(1.0, 2.6) * s)))
            cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
            contrast = rng.uniform(9, 16) if faint else rng.uniform(28, 75)
            sign = -1.0 if rng.random() < 0.7 else 1.0
            sp.bgr += (sign * contrast) * mask[:, :, None]
            visible = mask > 0.3
            size = length
        elif cid == 1:  # dent: a shaded pit, dark on one side and lit on the other
            rad = (rng.uniform(3.5, 5.5) if faint else rng.uniform(6, 17)) * s
            contrast = rng.uniform(10, 18) if faint else rng.uniform(30, 70)
            yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
            d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (rad * rad)
            pit = np.exp(-d2 * 1.5)
            rim = np.exp(-(((xx - cx + 0.45 * rad) ** 2 + (yy - cy + 0.45 * rad) ** 2) / (rad * rad)) * 2.5)
            shading = -pit + 0.5 * rim
            sp.bgr += (contrast * shading)[:, :, None]
            visible = np.abs(shading) > 0.2
            size = 2 * rad
        else:  # contamination: an irregular smear of oil or dirt
            rad = (rng.uniform(4, 7) if faint else rng.uniform(8, 26)) * s
            k = int(rng.integers(7, 12))
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            rr = rad * rng.uniform(0.55, 1.25, k)
            pts = np.stack([cx + rr * np.cos(ang), cy + rr * np.sin(ang)], 1)
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0, cv2.LINE_AA)
            mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, 1.2 * s))
            colour = np.array(rng.choice([[40, 60, 90], [30, 34, 38], [70, 110, 140]]), np.float32)
            opacity = rng.uniform(0.16, 0.3) if faint else rng.uniform(0.5, 0.9)
            a = (mask * opacity)[:, :, None]
            before = float(sp.bgr[int(cy), int(cx)].mean())
            sp.bgr += (colour - sp.bgr) * a
            contrast = abs(before - float(colour.mean())) * opacity
            visible = mask > 0.3
            size = 2 * float(rr.max())
        # The true box bounds what can be seen of the defect: on the part, not over a hole or the belt.
        ys, xs = np.nonzero(visible & (sp.alpha > 0.5))
        if xs.size == 0:
            return
        outline = np.array([[xs.min(), ys.min()], [xs.max() + 1.0, ys.max() + 1.0]])
        sp.defects.append((cid, DEFECT_CLASSES[cid], outline, float(contrast), float(size), bool(faint)))

    # ----------------------------------------------------------------- optics and light

    def _lens_map(self, lens: Lens) -> tuple[np.ndarray, np.ndarray]:
        maps = self._lens_maps.get(lens)
        if maps is None:
            cam = Camera.for_lens(lens, self.width, self.height)
            nominal = Camera.for_lens(NOMINAL_LENS, self.width, self.height)
            v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
            xu, yu = cam.undistort(u, v)
            mx = (nominal.fx * xu + nominal.cx).astype(np.float32)
            my = (nominal.fx * yu + nominal.cy).astype(np.float32)
            maps = cv2.convertMaps(mx, my, cv2.CV_16SC2)
            self._lens_maps[lens] = maps
        return maps

    def _warp_box(self, box: Box, cam: Camera) -> Box:
        """A scene box seen through ``cam`` (corners and edge midpoints, then their bounds)."""
        nominal = Camera.for_lens(NOMINAL_LENS, self.width, self.height)
        xs = np.array([box.x0, box.x1, box.x0, box.x1, (box.x0 + box.x1) / 2, (box.x0 + box.x1) / 2, box.x0, box.x1])
        ys = np.array([box.y0, box.y0, box.y1, box.y1, box.y0, box.y1, (box.y0 + box.y1) / 2, (box.y0 + box.y1) / 2])
        u, v = cam.distort((xs - nominal.cx) / nominal.fx, (ys - nominal.cy) / nominal.fx)
        x0, x1 = max(0.0, float(u.min())), min(self.width - 1.0, float(u.max()))
        y0, y1 = max(0.0, float(v.min())), min(self.height - 1.0, float(v.max()))
        if x1 <= x0 or y1 <= y0:
            return replace(box, x0=0.0, y0=0.0, x1=0.0, y1=0.0)
        return replace(box, x0=x0, y0=y0, x1=x1, y1=y1)

    def _light(self, scene: np.ndarray, cond: Conditions, slot: int) -> np.ndarray:
        """Lamp colour, output and slope times the lens's vignetting, then sensor noise."""
        H, W = self.height, self.width
        if cond.lens.vignetting != self._vignetting_key:
            yy = np.linspace(-1, 1, H, dtype=np.float32)[:, None]
            xx = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
            v = 1 - cond.lens.vignetting * (xx * xx + yy * yy) / 2
            self._vignetting = cv2.merge([v, v, v])
            self._vignetting_key = cond.lens.vignetting
            self._gain_key = None
        gains = _colour_temperature_gains(cond.colour_temp_k) * cond.lamp_gain
        # Quantised to 0.2 %: far below the sensor noise, and the field is rebuilt only every few frames.
        gain_key = tuple(float(v) for v in np.round(np.array([cond.lateral_gradient, *gains]) * 500) / 500)
        if gain_key != self._gain_key:
            # The lamp's colour and output and its left-to-right slope vary along x only.
            lateral = 1 + gain_key[0] * np.linspace(-0.5, 0.5, W, dtype=np.float32)
            row = (lateral[:, None] * np.array(gain_key[1:], np.float32)[None, :])[None]
            if self._gain_field.shape != self._vignetting.shape:
                self._gain_field = np.empty_like(self._vignetting)
            np.multiply(self._vignetting, row, out=self._gain_field)
            self._gain_key = gain_key
        lit = cv2.multiply(scene, self._gain_field, dtype=cv2.CV_8U)
        rng = np.random.default_rng([self.seed, 8, slot])
        oy, ox = (int(v) for v in rng.integers(0, 32, 2))
        noise = self._noise[oy:oy + self.height, ox:ox + self.width]
        return cv2.add(lit, noise, dtype=cv2.CV_8U)

    # ----------------------------------------------------------------- calibration target

    BOARD_INNER = (9, 6)  # inner corners, columns x rows
    BOARD_SQUARE_MM = 8.0

    def board_pose(self, slot: int) -> dict[str, Any]:
        """Where the checkerboard is held in a given slot: a varied, reproducible pose."""
        rng = np.random.default_rng([self.seed, 4, slot])
        cols, rows = self.BOARD_INNER
        bw, bh = (cols + 1) * self.BOARD_SQUARE_MM, (rows + 1) * self.BOARD_SQUARE_MM
        field_w = self.width * mm_per_px(self.width)
        field_h = self.height * mm_per_px(self.width)
        rx, ry = rng.uniform(-0.45, 0.45, 2)
        rz = rng.uniform(-0.3, 0.3)
        z = WORKING_DISTANCE_MM * rng.uniform(0.95, 1.35)
        span_x = max(0.0, (field_w * z / WORKING_DISTANCE_MM - bw * 1.15) / 2)
        span_y = max(0.0, (field_h * z / WORKING_DISTANCE_MM - bh * 1.15) / 2)
        tx, ty = rng.uniform(-span_x, span_x), rng.uniform(-span_y, span_y)
        return {"rvec": [float(rx), float(ry), float(rz)], "centre_mm": [float(tx), float(ty), float(z)],
                "inner_corners": [cols, rows], "square_mm": self.BOARD_SQUARE_MM}

    def _render_checkerboard(self, slot: int, cam: Camera) -> np.ndarray:
        pose = self.board_pose(slot)
        R, _ = cv2.Rodrigues(np.array(pose["rvec"], np.float64))
        cols, rows = pose["inner_corners"]
        sq = pose["square_mm"]
        bw, bh = (cols + 1) * sq, (rows + 1) * sq
        centre = np.array(pose["centre_mm"], np.float64)
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
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
        scene = self._belt_at(slot, 0.0)
        board = np.where(dark, 28, 215).astype(np.uint8)
        scene[on] = board[on][:, None]
        return scene


SPRITE_PAD = 10  # pixels around a part's sprite, room for its blurred edge
GOLDEN_COUNT = 6
GOLDEN_DEFECTS = (0, 1, 0, 2, 0, 3)  # defects on each golden part; 0 means a good part
