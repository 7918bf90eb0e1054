"""The parts on the simulated line: plates of two product variants, their surface, holes or label, and defects.

A part's picture (a *sprite*: colour before lighting, and coverage) is a pure function of the station's seed,
the part's number, its variant and the defocus; it is drawn once and cached, so a frame costs a few blends.
Golden parts (:mod:`engine.simulation.golden`) are drawn the same way from their own, seed-free streams.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.simulation.defects import DEFECT_CLASSES, DefectMark, draw_defect
from engine.simulation.golden import GOLDEN_DEFECTS, golden_index, golden_rng_key

SPRITE_PAD = 10  # pixels around a part's sprite, room for its blurred edge
SPRITE_CACHE = 24  # sprites kept, the most recently used


@dataclass
class Sprite:
    """A part's picture before lighting, with its defects in the sprite's pixels."""

    bgr: np.ndarray  # float32 h x w x 3, before lighting
    alpha: np.ndarray  # float32 h x w, 1 on the part
    defects: list[DefectMark] = field(default_factory=list)


class Parts:
    """Draws and caches the pictures of the line's parts. Not thread-safe: one per simulator."""

    def __init__(self, seed: int, scale: float, part_w: int, part_h: int) -> None:
        self.seed, self.scale = seed, scale
        self.part_w, self.part_h = part_w, part_h
        self._sprites: OrderedDict[tuple, Sprite] = OrderedDict()
        self._textures = {v: self._make_texture(v) for v in (0, 1)}

    def rng(self, part: int, golden: bool, stream: int) -> np.random.Generator:
        """A part's own random stream: its layout (0), its picture and defects (1)."""
        key = golden_rng_key(part) if golden else [self.seed, 1, part]
        return np.random.default_rng([*key, stream])

    def sprite(self, part: int, variant: int, golden: bool, sigma: float) -> Sprite:
        """The picture of a part of a variant, defocused by ``sigma`` pixels: from the cache, else drawn."""
        key = (golden_index(part) if golden else part, variant, golden, sigma)
        sp = self._sprites.get(key)
        if sp is None:
            sp = self._make_sprite(part, variant, golden)
            if sigma > 0:
                sp = Sprite(cv2.GaussianBlur(sp.bgr, (0, 0), sigma), cv2.GaussianBlur(sp.alpha, (0, 0), sigma),
                             sp.defects)
            self._sprites[key] = sp
            while len(self._sprites) > SPRITE_CACHE:
                self._sprites.popitem(last=False)
        else:
            self._sprites.move_to_end(key)
        return sp

    def _make_sprite(self, part: int, variant: int, golden: bool) -> Sprite:
        s = self.scale
        rng = self.rng(part, golden, 1)
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
        sprite = Sprite(bgr, alpha)
        if golden:
            n_defects = GOLDEN_DEFECTS[golden_index(part)]
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
            mark = draw_defect(sprite.bgr, sprite.alpha, rng, cid, cx, cy, golden, s)
            if mark is not None:
                sprite.defects.append(mark)
        sprite.bgr = np.clip(sprite.bgr, 0, 255)
        return sprite

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


def blend(scene: np.ndarray, sprite: Sprite, x0: int, y0: int) -> None:
    """Lay ``sprite`` over ``scene`` (uint8 BGR, changed in place) with its top left corner at ``(x0, y0)``."""
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
