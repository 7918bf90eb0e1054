"""The simulated production line: the station's built-in camera and its ground truth.

Parts ride a conveyor across the field of view; some carry defects (scratches,
dents, contamination) of varied size, contrast and position, including faint
boundary cases. Every frame is a pure function of ``(seed, scenario, size, slot)``,
where a *slot* is one camera frame period: the same seed gives the same frames.

This module is the conveyor and the camera's frame: the belt, where each part is
in a slot, and the order of the steps. The rest of the line has a module each:
:mod:`~engine.simulation.scenarios` (lamp, optics and product mix over line time),
:mod:`~engine.simulation.parts` and :mod:`~engine.simulation.defects` (what rides
the belt), :mod:`~engine.simulation.golden` (the golden parts),
:mod:`~engine.simulation.optics` (lens and camera), :mod:`~engine.simulation.lamp`
(light and sensor noise) and :mod:`~engine.simulation.targets` (the checkerboard).

Rendering cost per frame is a belt copy, a few sprite blends, a gain-map multiply
and a noise add (plus a remap and a blur after a lens change); part sprites are
drawn once and cached. ``inspection-station bench sim`` measures it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from engine.core.frame import Box, DefectTruth, GroundTruth
from engine.simulation.golden import golden_part_id
from engine.simulation.lamp import Exposure
from engine.simulation.optics import REFERENCE_WIDTH, Camera, Lens, lens_map, warp_box
from engine.simulation.parts import Parts, blend
from engine.simulation.scenarios import SCENARIOS, Conditions
from engine.simulation.targets import board_pose, render_checkerboard

SIMULATOR_VERSION = "1.1"
EPOCH0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the simulated line's clock starts here


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
        self._blurred_belt: dict[float, np.ndarray] = {}
        self._lens_maps: dict[Lens, tuple[np.ndarray, np.ndarray]] = {}
        self.parts = Parts(self.seed, self.scale, self.part_w, self.part_h)
        self.exposure = Exposure(self.seed, self.width, self.height)

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
            board = self.board_pose(slot)
            scene, defects = render_checkerboard(self._belt_at(slot, 0.0), board, cam), []
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
                defects = [replace(d, box=warp_box(d.box, cam)) for d in defects]
                defects = [d for d in defects if d.box.area > 0]
        image = self.exposure.apply(scene, cond, slot)
        conditions = cond.to_dict()
        conditions.update(scenario=self.scenario.name, slot=slot, sim_time_s=round(self.time_of(slot), 3),
                          simulator_version=SIMULATOR_VERSION, show=show or "production")
        if board is not None:
            conditions["board"] = board
        return image, GroundTruth(tuple(defects), conditions)

    def board_pose(self, slot: int) -> dict[str, Any]:
        """Where the checkerboard is held in a given slot: a varied, reproducible pose."""
        return board_pose(self.seed, slot, self.width, self.height)

    # ----------------------------------------------------------------- the belt

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

    def _belt_at(self, slot: int, sigma: float) -> np.ndarray:
        belt = self._belt
        if sigma > 0:
            belt = self._blurred_belt.get(sigma)
            if belt is None:
                belt = self._blurred_belt[sigma] = cv2.GaussianBlur(self._belt, (0, 0), sigma)
        offset = (-slot * self.speed) % self.seam_period
        return belt[:, offset:offset + self.width].copy()

    def _lens_map(self, lens: Lens) -> tuple[np.ndarray, np.ndarray]:
        maps = self._lens_maps.get(lens)
        if maps is None:
            maps = self._lens_maps[lens] = lens_map(lens, self.width, self.height)
        return maps

    # ----------------------------------------------------------------- the parts on the belt

    def _part_layout(self, part: int, golden: bool) -> tuple[int, int]:
        """Entry slot and vertical centre of a part."""
        rng = self.parts.rng(part, golden, 0)
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
            sprite = self.parts.sprite(part, variant, golden, sigma)
            y0 = yc - sprite.alpha.shape[0] // 2
            blend(scene, sprite, x0, y0)
            for cid, cname, pts, contrast, size, faint in sprite.defects:
                p = pts + (x0, y0)
                full = Box(float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()),
                           float(p[:, 1].max()), cid, cname)
                box = Box(max(0.0, full.x0), max(0.0, full.y0), min(self.width - 1.0, full.x1),
                          min(self.height - 1.0, full.y1), cid, cname)
                if box.width <= 0 or box.height <= 0 or box.area < 0.5 * full.area:
                    continue  # mostly outside the frame: not a visible defect
                defects.append(DefectTruth(box, part if not golden else golden_part_id(part),
                                           contrast, size, faint))
        return scene, defects
