"""A model file never runs its author's code when the station loads it.

Each hostile ``.pt2`` archive is built here from a small, real ``torch.export`` program: one member
is swapped for a pickle whose ``__reduce__`` creates a marker file, or the program's JSON is made
to carry Python where PyTorch expects a size expression, a guard or an operator. The station must
refuse each with one sentence (exit status 2 on the command line) and the marker must never appear,
through the loader the window's model chooser uses and through ``model info``, ``run`` and ``eval``.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.inference import ModelError, load_detector

EXE = shutil.which("inspection-station") or ""
SMALL_SIM = "sim://?seed=11&scenario=lighting-aging&width=320&height=256"


class Detections(nn.Module):
    """(1, 4 + 2, 4) Ultralytics layout, with a parameter (a weight) and a lifted tensor (a constant)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("out", torch.rand(1, 6, 4))
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out.expand(x.shape[0], -1, -1) + 0 * x.mean() + torch.tensor([0.0])


class Marker:
    """Unpickling this creates the marker file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_marker(path: Path) -> bytes:
    buf = io.BytesIO()
    torch.save(Marker(path), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def clean_archive(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "clean.pt2"
    ep = torch.export.export(Detections().eval(), (torch.zeros(1, 3, 64, 64),))
    torch.export.save(ep, str(path), extra_files={"config.txt": json.dumps({"names": ["a", "b"]})})
    return path


def rewrite(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for n, data in members.items():
            z.writestr(n, data)
    return dst


def member(members: dict[str, bytes], suffix: str) -> str:
    return next(n for n in members if n.endswith(suffix))


def sample_inputs(marker: Path):
    def change(members):
        members[member(members, "data/sample_inputs/model.pt")] = pickled_marker(marker)
    return change


def pickled_payload(kind: str, fqn: str, marker: Path):
    def change(members):
        key = member(members, f"data/{kind}/model_{kind}_config.json")
        cfg = json.loads(members[key])
        entry = cfg["config"][fqn]
        entry["use_pickle"] = True
        members[key] = json.dumps(cfg).encode()
        members[key.rsplit("/", 1)[0] + "/" + entry["path_name"]] = pickled_marker(marker)
    return change


def opaque_constant(marker: Path):
    def change(members):
        key = member(members, "data/constants/model_constants_config.json")
        cfg = json.loads(members[key])
        cfg["config"]["lifted_tensor_0"]["path_name"] = "opaque_obj_0"
        members[key] = json.dumps(cfg).encode()
        members[key.rsplit("/", 1)[0] + "/opaque_obj_0"] = pickle_dumps_marker(marker)
    return change


def pickle_dumps_marker(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(Marker(marker))


def program(edit):
    def change(members):
        key = member(members, "models/model.json")
        doc = json.loads(members[key])
        edit(doc)
        members[key] = json.dumps(doc).encode()
    return change


def shell(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}')"


def size_expression(marker: Path):
    def edit(doc):  # sympy.sympify evaluates it
        doc["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0] = {
            "as_expr": {"expr_str": shell(marker), "hint": None}}
    return program(edit)


def guard(marker: Path):
    def edit(doc):  # torch.export exec-s the guards into the module's forward
        doc["guards_code"] = [f"{shell(marker)} == 0"]
    return program(edit)


def operator_target(marker: Path):
    def edit(doc):
        doc["graph_module"]["graph"]["nodes"].insert(0, {
            "target": "torch.serialization.os.system", "name": "sys0", "metadata": {},
            "inputs": [{"name": "command", "arg": {"as_string": f"touch {marker}"}, "kind": 1}],
            "outputs": [{"as_none": True}], "is_hop_single_tensor_return": None})
    return program(edit)


HOSTILE = {
    "sample inputs": (sample_inputs, "sample inputs"),
    "pickled weight": (lambda m: pickled_payload("weights", "lin.weight", m), "pickle"),
    "pickled constant": (lambda m: pickled_payload("constants", "lifted_tensor_0", m), "pickle"),
    "opaque constant": (opaque_constant, "unpickling"),
    "size expression": (size_expression, "shape expression"),
    "guard": (guard, "guards"),
    "operator": (operator_target, "not a PyTorch operator"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_loader_the_window_uses_refuses_and_runs_nothing(case, clean_archive, tmp_path):
    make, words = HOSTILE[case]
    marker = tmp_path / "marker"
    path = rewrite(clean_archive, tmp_path / "model.pt2", make(marker))
    with pytest.raises(ModelError) as e:
        load_detector(str(path), device="cpu")  # what the window's model chooser calls on its worker
    assert not marker.exists(), f"loading the {case} archive ran its code"
    msg = str(e.value)
    assert words in msg and "model.pt2" in msg and "\n" not in msg


def test_members_that_need_more_than_the_safe_loader_are_refused(clean_archive, tmp_path):
    def legacy_weights(members):
        root = next(iter(members)).split("/", 1)[0]
        members[f"{root}/data/weights/model.pt"] = pickled_marker(tmp_path / "marker")

    def aoti(members):
        root = next(iter(members)).split("/", 1)[0]
        members[f"{root}/data/aotinductor/model/model.so"] = b"\x7fELF"

    for change, words in ((legacy_weights, "as a pickle"), (aoti, "compiled code")):
        path = rewrite(clean_archive, tmp_path / "model.pt2", change)
        with pytest.raises(ModelError, match=words):
            load_detector(str(path), device="cpu")
    assert not (tmp_path / "marker").exists()


def test_a_clean_archive_still_loads(clean_archive):
    det = load_detector(str(clean_archive), device="cpu")
    assert det.card["format"] == "torch.export" and det.classes == ("a", "b") and det.input_size == (64, 64)


def test_a_program_with_dynamic_sizes_still_loads(tmp_path):
    class Pool(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.mean(dim=(2, 3))  # (N, 3)
            return torch.cat([y, y, y, y], 1).reshape(x.shape[0], 6, 2)  # (N, 4 + 2, 2)

    batch, height = torch.export.Dim("batch", min=1, max=8), torch.export.Dim("height", min=16, max=512)
    ep = torch.export.export(Pool(), (torch.zeros(2, 3, 64, 64),), dynamic_shapes={"x": {0: batch, 2: 2 * height}})
    torch.export.save(ep, str(tmp_path / "dyn.pt2"), extra_files={"config.txt": '{"imgsz": [96, 64]}'})
    det = load_detector(str(tmp_path / "dyn.pt2"), device="cpu")
    assert det.card["output_layout"] == "yolo" and det.input_size == (64, 96)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [EXE] if EXE else [sys.executable, "-m", "app.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=240, cwd=cwd)


@pytest.mark.parametrize("command", ["model info", "run", "eval"])
def test_the_command_line_refuses_a_model_that_would_unpickle(command, clean_archive, tmp_path):
    marker = tmp_path / "marker"
    path = str(rewrite(clean_archive, tmp_path / "model.pt2", sample_inputs(marker)))
    argv = {"model info": ["model", "info", path],
            "run": ["run", "--headless", "--source", SMALL_SIM, "--frames", "1", "--model", path,
                    "--data-dir", str(tmp_path / "data")],
            "eval": ["eval", "--model", path, "--source", SMALL_SIM, "--frames", "1"]}[command]
    p = cli(*argv, cwd=tmp_path)
    assert not marker.exists(), f"{command} ran the model file's code"
    assert p.returncode == 2, p.stderr
    assert "sample inputs" in p.stderr and "Traceback" not in p.stderr
