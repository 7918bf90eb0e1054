"""The simulated line's lamp and sensor: lamp colour, output and left-to-right slope, times the lens's
vignetting, then sensor noise.

The lamp's gain field is rebuilt only when the conditions move by more than 0.2 % (far below the noise), and
the noise is read at an offset from one bank drawn once, so lighting a frame is one multiply and one add.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.simulation.scenarios import Conditions


def colour_temperature_gains(kelvin: float) -> np.ndarray:
    """BGR gains of a lamp at ``kelvin`` on a camera white-balanced for 5600 K."""

    def rgb(k: float) -> np.ndarray:
        t = k / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
        return np.array([b, g, r], dtype=np.float64)

    g = rgb(kelvin) / rgb(5600.0)
    return g / g[1]


class Exposure:
    """Lights a scene as the lamp and lens of given conditions do, and adds the sensor's noise.

    Not thread-safe: it keeps the last gain field. One per simulator."""

    NOISE_MARGIN = 32  # the noise bank is this much larger than a frame; each frame reads it at an offset

    def __init__(self, seed: int, width: int, height: int) -> None:
        self.seed, self.width, self.height = seed, width, height
        # The noise bank split into its positive and negative parts: saturating add then subtract is exactly the
        # saturating sum with the signed noise (one of the two is zero at every pixel) at a third of the cost.
        noise = self._make_noise()
        self._noise_up = np.clip(noise, 0, 127).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 127).astype(np.uint8)
        self._vignetting_key: float | None = None
        self._vignetting = np.empty(0, np.float32)
        self._gain_key: tuple | None = None
        self._gain_field = np.empty(0, np.float32)

    def _make_noise(self) -> np.ndarray:
        """A bank of sensor noise, one frame plus a margin."""
        rng = np.random.default_rng([self.seed, 2])
        m = self.NOISE_MARGIN
        noise = rng.normal(0.0, 2.2, (self.height + m, self.width + m, 3))
        return np.clip(np.round(noise), -127, 127).astype(np.int16)

    def apply(self, scene: np.ndarray, cond: Conditions, slot: int) -> np.ndarray:
        """Lamp colour, output and slope times the lens's vignetting, then sensor noise."""
        H, W = self.height, self.width
        if cond.lens.vignetting != self._vignetting_key:
            yy = np.linspace(-1, 1, H, dtype=np.float32)[:, None]
            xx = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
            v = 1 - cond.lens.vignetting * (xx * xx + yy * yy) / 2
            self._vignetting = cv2.merge([v, v, v])
            self._vignetting_key = cond.lens.vignetting
            self._gain_key = None
        gains = colour_temperature_gains(cond.colour_temp_k) * cond.lamp_gain
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
        oy, ox = (int(v) for v in rng.integers(0, self.NOISE_MARGIN, 2))
        up = self._noise_up[oy:oy + self.height, ox:ox + self.width]
        down = self._noise_down[oy:oy + self.height, ox:ox + self.width]
        return cv2.subtract(cv2.add(lit, up, dst=lit), down, dst=lit)
