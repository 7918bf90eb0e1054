"""The recalibration wizard says what it measured in sentences a technician reads: no raw field names, no
True or False, no empty lists."""

import re

import pytest

from widgets.recalibration_wizard import describe

# True/False/None, a field name with an underscore, an empty list, or a line that starts with a raw key.
RAW = re.compile(r"\b(True|False|None)\b|\b[a-z]+_[a-z_]+\b|\[\]|^(ok|found|metrics|beyond|within|pass)\b")

ROW = {"current": 71.2, "reference": 71.7, "low": 67.4, "high": 76.0, "ok": True, "delta": -0.5, "correction": 1.01}
BAD = {**ROW, "current": 80.3, "ok": False}

CASES = [
    ("geometry", {"views": 4, "min_views": 15, "coverage": 0.31, "advice": "tilt it", "found": True,
                  "accepted": True}),
    ("geometry", {"views": 0, "min_views": 15, "coverage": 0.0, "advice": "", "found": False, "accepted": False}),
    ("focus", {"focus": 1.21, "focus_settled": 1.2, "peak": 1.25, "band": (1.01, 1.37)}),
    ("focus", {"focus": 0.9, "focus_settled": 0.9, "peak": 1.25, "band": None}),
    ("exposure", {"exposure": {"mean_luma": ROW, "gain_r": BAD, "gain_b": {"current": 1.0}}}),
    ("golden", {"frames": 40, "hit_rate": {"golden part 1: scratch": 1.0, "golden part 2: dent": 0.2},
                "missed": ["golden part 2: dent"], "false_alarms": 3, "false_alarms_per_frame": 0.075,
                "pass": False}),
    ("golden", {"frames": 0, "hit_rate": {}, "missed": [], "false_alarms": 0, "false_alarms_per_frame": 0.0,
                "pass": False}),
    ("domain", {"frames": 60, "metrics": {"mean_luma": ROW, "focus": BAD}, "within": False, "luma_psi": 0.02,
                "novel_share": 0.4, "beyond": ["focus", "novelty (model embedding)"]}),
    ("domain", {"frames": 60, "metrics": {"mean_luma": ROW}, "within": True, "luma_psi": 0.01, "beyond": []}),
]


@pytest.mark.parametrize(("step", "values"), CASES)
def test_every_step_is_told_in_sentences(step, values):
    lines = describe(step, values)
    assert lines, "a step with values says something"
    for line in lines:
        assert not RAW.search(line), f"raw value in {line!r}"
        assert line[0].isupper() or line[0].isdigit()
        assert line.endswith(".")


def test_the_checkerboard_count_and_the_tolerances_read_as_sentences():
    assert describe("geometry", CASES[0][1], seen=15, found=14)[0] == "The checkerboard was found in 14 of 15 images."
    exposure = describe("exposure", CASES[4][1])
    assert exposure[0] == "Brightness within tolerance (71.2, reference 71.7)."
    assert exposure[1].startswith("Red balance outside tolerance: 80.3 against 71.7")
    assert "Unlike the training images in: Sharpness, novelty (model embedding)." in describe("domain", CASES[7][1])
