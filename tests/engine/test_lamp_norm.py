"""Lamp normalisation: frames of the simulated line under its own lamp and under an aged one, the built-in network
with a card that carries the stage, on PyTorch and on ONNX Runtime."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import resources
from engine.inference.builtin import BuiltinDetector, export_onnx
from engine.inference.common import ModelError
from engine.inference.lamp_norm import LampNorm, bright_level
from engine.sources.sim import SimSource


def frames(scenario: str, seed: int, n: int, start: int = 0, step: int = 7) -> list:
    src = SimSource(seed=seed, scenario=scenario, start=start, width=640, height=512)
    src.open()
    try:
        out = []
        for _ in range(n):
            out.append(src.read())
            src.skip(step)
        return out
    finally:
        src.close()


def rgb(f) -> np.ndarray:
    return np.ascontiguousarray(f.image[:, :, ::-1]) if f.channel_order == "BGR" else f.image


@pytest.fixture(scope="module")
def norm() -> LampNorm:
    return LampNorm.measure([rgb(f) for f in frames("nominal", 1000, 12, start=60)])


def test_the_nominal_line_is_left_nearly_as_it_is_and_the_aged_lamp_is_scaled_back(norm):
    for f in frames("nominal", 4, 6, start=60):  # the lamp has warmed up (it gives less light for a minute)
        assert np.allclose(norm.gains(f.image, f.channel_order), 1.0, atol=0.08)
    aged = frames("lighting-aging", 21, 6, start=1440)
    for f in aged:
        g = norm.gains(f.image, f.channel_order)
        assert (g > 1.1).all() and g[2] > g[0]  # less light, and warmer: blue is scaled up most
        level = bright_level(norm.apply(rgb(f)), norm.percentile)
        assert np.allclose(level, norm.reference, rtol=0.03)
    # The picture is scaled, not reshaped: the pixels keep their order in each channel.
    a = rgb(aged[0])
    b = norm.apply(a)
    order_a, order_b = np.argsort(a[::8, ::8, 1], axis=None), b[::8, ::8, 1].ravel()
    assert (np.diff(order_b[order_a].astype(int)) >= 0).all()


def test_the_letterbox_padding_is_neither_measured_nor_scaled(norm):
    from engine.inference.common import letterbox

    wide = rgb(frames("lighting-aging", 21, 1, start=1440)[0])[152:872]  # a 16:9 picture of the aged line
    boxed, lb = letterbox(wide, 640, 512)
    assert lb.pad_y > 0 and (boxed[:lb.pad_y] == 114).all()
    assert np.allclose(norm.gains(boxed), norm.gains(wide), rtol=0.02)  # the grey bands do not count
    out = norm.apply(boxed)
    assert (out[:lb.pad_y] == 114).all() and (out[-lb.pad_y:] == 114).all()
    assert np.allclose(bright_level(out, norm.percentile), norm.reference, rtol=0.03)


def test_gains_are_bounded_on_a_black_or_a_blown_out_frame(norm):
    assert np.allclose(norm.gains(np.zeros((64, 80, 3), np.uint8)), 2.5)
    assert np.allclose(norm.gains(np.full((64, 80, 3), 255, np.uint8)), np.asarray(norm.reference) / 255.0)


def test_the_card_section_goes_and_comes_back_and_a_bad_one_is_refused(norm):
    assert LampNorm.from_card({"input_normalisation": norm.to_card()}) == LampNorm(
        tuple(round(v, 2) for v in norm.reference), norm.percentile, norm.gain_range)
    other = LampNorm((120.5, 130.0, 140.25), 97.5, (0.7, 1.6))
    assert LampNorm.from_card({"input_normalisation": other.to_card()}) == other
    assert LampNorm.from_card({}) is None
    for bad in ({"reference_rgb": [1, 2]}, {"reference_rgb": "bright"}, {"reference_rgb": "123"},
                {"reference_rgb": [0, 100, 100]}, {"reference_rgb": [100, 100, 100], "gain_range": [2, 3]},
                {"reference_rgb": [100, 100, 100], "percentile": 20}, {}, [183, 179, 177]):
        with pytest.raises(ValueError):
            LampNorm.from_card({"input_normalisation": bad})


@pytest.fixture
def normalised_model(tmp_path, norm):
    for name in ("builtin_detector.pt", "builtin_detector.json"):
        shutil.copy(resources.path(name), tmp_path / name)
    card = json.loads((tmp_path / "builtin_detector.json").read_text())
    card["input_normalisation"] = norm.to_card()
    (tmp_path / "builtin_detector.json").write_text(json.dumps(card))
    return tmp_path / "builtin_detector.pt"


def darker(f, gains_bgr):
    from dataclasses import replace

    return replace(f, image=np.clip(f.image * np.asarray(gains_bgr, np.float32), 0, 255).astype(np.uint8))


def change(a, b, floor: float = 0.5) -> float:
    """How far detections ``b`` are from ``a``: over the boxes of ``a`` scored at least ``floor``, the mean score
    difference to the best box of the same class in ``b`` overlapping it by IoU 0.5 (1 when there is none)."""
    gaps = [min((abs(x.score - y.score) for y in b.boxes if y.class_id == x.class_id and x.iou(y) >= 0.5),
                default=1.0) for x in a.boxes if x.score >= floor]
    return float(np.mean(gaps))


def test_a_model_whose_card_normalises_sees_a_dimmed_lamp_as_its_own(normalised_model):
    src = SimSource(seed=3, scenario="nominal", start=60)  # the line's own 1280 x 1024 frames
    src.open()
    line = [src.read() for _ in range(4)]
    src.close()
    dim = [darker(f, (0.7, 0.76, 0.82)) for f in line]  # B, G, R: an aged, warmer lamp
    with_norm = BuiltinDetector(normalised_model, device="cpu", backend="torch", confidence=0.3)
    plain = BuiltinDetector(device="cpu", backend="torch", confidence=0.3)
    a, b = with_norm.detect(line), with_norm.detect(dim)
    p, q = plain.detect(line), plain.detect(dim)
    assert sum(x.score >= 0.5 for d in a for x in d.boxes) >= 4
    normalised = np.mean([change(x, y) for x, y in zip(a, b)])
    as_it_is = np.mean([change(x, y) for x, y in zip(p, q)])
    print(f"mean change of the scores under the dimmed lamp: {normalised:.3f} normalised, {as_it_is:.3f} as it is")
    assert normalised < 0.05 and as_it_is > 3 * normalised


class Inputs:
    """Notes what the network is given, on either runtime."""

    def __init__(self, det):
        self.seen = []
        if det.session is not None:
            run, self.session = det.session.run, det.session

            class Session:
                def run(_, names, feed):
                    self.seen.append(feed["images"].copy())
                    return run(names, feed)

            det.session = Session()
        else:
            model = det.model

            def forward(x):
                self.seen.append(x.detach().cpu().numpy().copy())
                return model(x)

            det.model = forward


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_network_is_given_nothing_above_one_and_the_padding_as_it_was(normalised_model, backend):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
        export_onnx(normalised_model.with_suffix(".onnx"), normalised_model)
    f = frames("lighting-aging", 21, 1, start=1440)[0]
    from dataclasses import replace

    img = f.image[152:872].copy()  # 16:9: padded above and below
    img[300:340, 600:700] = 250  # a glint: scaled up by the aged lamp's gains, it would pass 1
    det = BuiltinDetector(normalised_model, device="cpu", backend=backend, refine=False)
    seen = Inputs(det)
    det.detect([replace(f, image=img)])
    x = seen.seen[0][0]
    assert x.max() <= 1.0 and np.isclose(x.max(), 1.0)
    assert np.allclose(x[:, :40], 114 / 255) and np.allclose(x[:, -40:], 114 / 255)


def test_onnx_runtime_normalises_as_pytorch_does_and_the_export_says_how(normalised_model):
    pytest.importorskip("onnxruntime")
    from engine.inference import ort as onnxrt

    export_onnx(normalised_model.with_suffix(".onnx"), normalised_model)
    meta = onnxrt.session(str(normalised_model.with_suffix(".onnx")), "cpu", "m")[0].get_modelmeta()
    assert json.loads(meta.custom_metadata_map["input_normalisation"])["percentile"] == 99.0
    f = darker(frames("nominal", 3, 1)[0], (0.7, 0.76, 0.82))
    t = BuiltinDetector(normalised_model, device="cpu", backend="torch", refine=False, confidence=0.05).detect([f])[0]
    o = BuiltinDetector(normalised_model, device="cpu", backend="onnx", refine=False, confidence=0.05).detect([f])[0]
    assert len(t.boxes) == len(o.boxes) >= 1
    for x, y in zip(t.boxes, o.boxes):
        assert x.class_id == y.class_id and x.score == pytest.approx(y.score, abs=1e-3)


def test_a_card_with_a_broken_normalisation_is_one_sentence(normalised_model):
    card_file = normalised_model.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["input_normalisation"] = {"reference_rgb": [0, 0]}
    card_file.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot be used: its input_normalisation"):
        BuiltinDetector(normalised_model, device="cpu")
