"""ONNX Runtime underneath the ONNX detectors: sessions, providers, the external-data check, metadata.

The same input and output conventions as :mod:`engine.inference.user` (letterbox, RGB in [0, 1];
``(N, 4 + C, A)``, ``(N, A, 4 + C)`` or ``(N, K, 6)``; a further ``(N, D)`` output is the embedding).
Class names and ``imgsz`` come from the model's metadata properties, as Ultralytics writes them
(``names`` a Python-literal dict string).

An ONNX file is data, not code; before ONNX Runtime sees it, the station reads its protobuf and
refuses tensors whose external data lie outside the model's folder (an absolute path, ``..``, or a
link that leads out). Providers: the CPU, or CUDA where ONNX Runtime has it. Threads wait asleep
(no spinning), like the station's torch threads.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from engine.inference.common import ModelError

# ModelProto / GraphProto / NodeProto / AttributeProto / TensorProto field numbers (onnx.proto)
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_SPARSE = 1, 5, 15
_FUNC_NODE = 7
_NODE_ATTR = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_EXTERNAL, _TENSOR_LOCATION = 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, int or bytes view) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = None, i + 4
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated message")
        yield field, wire, value


def _external_locations(model: memoryview) -> list[str]:
    """Every external-data ``location`` the model's tensors name (graphs, subgraphs, functions)."""
    found: list[str] = []

    def tensor(buf: memoryview) -> None:
        for f, w, v in _fields(buf):
            if f == _TENSOR_EXTERNAL and w == 2:
                entry = {k: bytes(val).decode("utf-8", "replace") for k, wt, val in _fields(v) if wt == 2}
                if entry.get(1) == "location" and 2 in entry:
                    found.append(entry[2])
                elif entry.get(1) == "location":
                    found.append("")

    def sparse(buf: memoryview) -> None:
        for f, w, v in _fields(buf):
            if f in (_SPARSE_VALUES, _SPARSE_INDICES) and w == 2:
                tensor(v)

    def node(buf: memoryview) -> None:
        for f, w, v in _fields(buf):
            if f == _NODE_ATTR and w == 2:
                for af, aw, av in _fields(v):
                    if aw != 2:
                        continue
                    if af in (_ATTR_T, _ATTR_TENSORS):
                        tensor(av)
                    elif af in (_ATTR_G, _ATTR_GRAPHS):
                        graph(av)
                    elif af in (_ATTR_SPARSE, _ATTR_SPARSES):
                        sparse(av)

    def graph(buf: memoryview) -> None:
        for f, w, v in _fields(buf):
            if w != 2:
                continue
            if f == _GRAPH_INIT:
                tensor(v)
            elif f == _GRAPH_SPARSE:
                sparse(v)
            elif f == _GRAPH_NODE:
                node(v)

    for f, w, v in _fields(model):
        if w == 2 and f == _MODEL_GRAPH:
            graph(v)
        elif w == 2 and f == _MODEL_FUNCTIONS:
            for ff, fw, fv in _fields(v):
                if ff == _FUNC_NODE and fw == 2:
                    node(fv)
    return found


def check_external_data(path: Path, data: bytes) -> None:
    """Refuse a model whose external data lie outside its folder (one sentence)."""
    try:
        locations = _external_locations(memoryview(data))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise ModelError(f"model file {path.name} is not a readable ONNX model (damaged or truncated)") from None
    folder = path.resolve().parent
    for loc in locations:
        target = (folder / loc).resolve()
        if not loc or os.path.isabs(loc) or (target != folder and folder not in target.parents):
            raise ModelError(f"model file {path.name} keeps tensor data in {loc!r}, outside the model's folder, "
                             "so it is not loaded")


def add_metadata(model: bytes, meta: dict[str, str]) -> bytes:
    """``model`` (a serialized ModelProto) with ``metadata_props`` entries appended (field 14; protobuf merges
    repeated fields written at the end), as Ultralytics writes its ``names``; no ``onnx`` package needed."""
    def ld(field: int, payload: bytes) -> bytes:
        n, out = len(payload), bytearray([(field << 3) | 2])
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out) + payload

    return model + b"".join(ld(14, ld(1, str(k).encode()) + ld(2, str(v).encode())) for k, v in meta.items())


def literal(value: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return value


def providers_for(device: str | None) -> tuple[str, list[Any]]:
    """The station's device name and ONNX Runtime's providers for ``device`` (None: CUDA where ORT has it)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if device is None:
        device = "cuda:0" if "CUDAExecutionProvider" in have else "cpu"
    if device == "cuda":
        device = "cuda:0"
    if device == "cpu":
        return device, ["CPUExecutionProvider"]
    if not device.startswith("cuda:") or not device[5:].isdigit():
        raise ModelError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    if "CUDAExecutionProvider" not in have:
        raise ModelError(f"device {device!r} was asked for, but ONNX Runtime here has no CUDA provider "
                         "(install onnxruntime-gpu)")
    return device, [("CUDAExecutionProvider", {"device_id": int(device[5:])}), "CPUExecutionProvider"]


def session(source: str | bytes, device: str | None, name: str) -> tuple[Any, str]:
    """An ONNX Runtime session for a file path or model bytes, and the device it runs on."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(f"model file {name} is an ONNX model, but ONNX Runtime is not installed "
                         "(pip install onnxruntime)") from None
    device, providers = providers_for(device)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # threads wait asleep, as torch's do
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    threads = torch.get_num_threads()
    if threads > 0:
        so.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(source, sess_options=so, providers=providers), device
    except Exception as e:  # noqa: BLE001 - any failure to load is one sentence for the user
        raise ModelError(f"model file {name} could not be loaded by ONNX Runtime ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


__all__ = ["add_metadata", "available", "check_external_data", "literal", "providers_for", "session"]
