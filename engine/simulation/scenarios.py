"""The simulated line's scenarios: how lamp, optics, camera and product mix change over line time.

Slow conditions follow a simulated line clock, ``t = slot * dt`` seconds, so one frame can stand for minutes
or hours of line time. A scenario maps a frame slot and its time to the :class:`Conditions` of that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from engine.simulation.optics import NOMINAL_LENS, REPLACEMENT_LENS, Lens


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
