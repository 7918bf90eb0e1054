"""User models: ``torch.export`` programs (``.pt2``) and TorchScript files (Ultralytics YOLO exports too).

The station never unpickles a user file. It looks inside the file before handing it to
PyTorch: a ``.pt2`` archive goes to ``torch.export.load`` and a TorchScript archive to
``torch.jit.load``; a pickle, a ``torch.save`` checkpoint or anything else is refused with
one sentence (:class:`ModelError`).

A ``.pt2`` archive is read once into memory and every member is checked before PyTorch sees
it (:func:`vet_export_archive`); PyTorch then loads the checked copy, never the file again.
Refused, because loading them would unpickle or run what the file's author wrote: sample
inputs that the safe loader (``torch.load(weights_only=True)``) cannot read (PyTorch would
retry them with ``weights_only=False``), weights or constants marked ``use_pickle``, custom or
opaque object constants, legacy ``.pt`` weight files, compiled AOTInductor / ExecuTorch / MTIA
payloads, graph nodes whose target is not a PyTorch operator, symbolic shape expressions or
guards that are more than arithmetic on sizes (PyTorch evaluates both as Python), and any
member PyTorch's writer does not produce.

Input convention (both formats)
    One float32 tensor ``(N, 3, H, W)``: RGB, scaled to [0, 1], the frame letterboxed
    (aspect kept, centred, padded with grey 114) into ``H x W``. ``H x W`` is taken from
    the program's static input shape, else from ``imgsz`` in the metadata, else 640 x 640.

Output convention (the first tensor when the model returns a tuple or list)
    ``(N, 4 + C, A)``: the Ultralytics detection layout, A anchors, each with the box's
        centre x, centre y, width and height in input pixels and C class scores in [0, 1].
        The station keeps boxes above the confidence threshold and runs class-wise NMS.
    ``(N, K, 6)``: final boxes, ``x0, y0, x1, y1, score, class`` in input pixels (Ultralytics
        end-to-end / NMS exports); no further NMS.
    A further 2-D ``(N, D)`` output, if there is one, is taken as the model's embedding (its
    pooled last hidden layer). Without one, the station uses a cheap image-level embedding
    (:func:`engine.inference.common.image_embedding`: luminance grid, colour moments, histogram),
    which follows the image, not the model's features.

Metadata
    A ``config.txt`` extra file (TorchScript: ``_extra_files``; ``.pt2``: ``extra_files`` of
    ``torch.export.save``) holding a JSON or Python-literal dict: ``names`` (a list, or a dict
    from class index to name), optionally ``imgsz`` (``[H, W]`` or one number), ``batch`` and
    ``half``. Ultralytics writes exactly this.

TorchScript is code: a TorchScript file runs what its author put in it. The station logs a
warning each time one is loaded; load only files from people you trust.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import logging
import re
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engine.core.frame import Box, Frame
from engine.core.protocols import Detections
from engine.inference.builtin import pick_device, sha256_of, verify_against_card
from engine.inference.common import ModelError, image_embedding, letterbox, nms, to_tensor

log = logging.getLogger("engine.inference")

PICKLE_OPCODES = (b"\x80",)  # pickle protocol 2+ starts with PROTO
MAX_CANDIDATES = 3000  # boxes above threshold that go into NMS
NMS_IOU = 0.45


def _sniff(path: Path) -> str:
    """``"export"``, ``"torchscript"``, ``"onnx"``; raises ModelError for anything else."""
    name = path.name
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelError(f"model file {path} cannot be read: {e.strerror}") from None
    if not head:
        raise ModelError(f"model file {name} is empty")
    if head[:1] == b"\x08":
        return "onnx"  # a protobuf ModelProto starts with its ir_version (field 1, a small varint)
    if not head.startswith(b"PK"):
        if head.startswith(PICKLE_OPCODES) or head[:1] in (b"(", b"}", b"]"):
            raise ModelError(f"model file {name} is a Python pickle, which the station never loads; "
                             "export the model to ONNX, with torch.export (.pt2) or TorchScript instead")
        raise ModelError(f"model file {name} is neither an ONNX model, a torch.export (.pt2) program nor a TorchScript file")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise ModelError(f"model file {name} is damaged or truncated (not a readable archive)") from None
    except Exception:  # noqa: BLE001 - zlib errors and the like while checking the members
        raise ModelError(f"model file {name} is damaged (an archive member fails its checksum)") from None
    if bad is not None:
        raise ModelError(f"model file {name} is damaged (archive member {bad} fails its checksum)")
    parts = [n.split("/", 1)[-1] for n in names]
    if any(p == "archive_format" or p.startswith("models/") for p in parts):
        return "export"
    if any(p.startswith("code/") for p in parts) and any(p == "constants.pkl" for p in parts):
        return "torchscript"
    if any(p == "data.pkl" for p in parts):
        raise ModelError(f"model file {name} is a torch.save checkpoint (pickled Python objects), which the station "
                         "never loads; export the model with torch.export (.pt2) or TorchScript instead")
    raise ModelError(f"model file {name} is a zip archive but neither a torch.export (.pt2) program nor TorchScript")


# ------------------------------------------------------------------ vetting a .pt2 archive

MAX_ARCHIVE_BYTES = 8 << 30  # the members' declared size, all together (a zip bomb stops here)
_ROOT_FILES = frozenset({"archive_format", "archive_version", "byteorder", ".data/version",
                         ".data/serialization_id", "extra/module_info.json"})
_MODEL_JSON = re.compile(r"models/([A-Za-z0-9_.-]+)\.json\Z")
_SAMPLE_INPUTS = re.compile(r"data/sample_inputs/([A-Za-z0-9_.-]+)\.pt\Z")
_PAYLOAD_CONFIG = re.compile(r"data/(weights|constants)/([A-Za-z0-9_.-]+)_(weights|constants)_config\.json\Z")
_RAW_PAYLOAD = {"weights": re.compile(r"weight_\d+\Z"), "constants": re.compile(r"tensor_\d+\Z")}
_EXTRA_FILE = re.compile(r"extra/[^/]+\Z")
_COMPILED_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia", "xl_model_weights/")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_OP_TARGET = re.compile(rf"torch\.ops\.(?!__){_IDENT}\.(?!__){_IDENT}(\.(?!__){_IDENT})?\Z")
_SYM_TARGETS = frozenset(
    [f"_operator.{n}" for n in ("eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub", "floordiv",
                                "mod", "pow", "truediv", "and_", "or_", "getitem", "not_", "abs")]
    + [f"math.{n}" for n in ("trunc", "floor", "ceil", "sqrt")]
    + [f"torch.{n}" for n in ("sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt",
                              "_sym_sqrt", "sym_sum")])
_SYMBOL = re.compile(r"[a-z]+\d+\Z")  # s0, u3, zuf0: the names PyTorch gives symbolic sizes
_EXPR_FUNCTIONS = frozenset({  # what PyTorch writes (sympy's srepr form and its own size functions)
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity", "Symbol", "Dummy", "Integer",
    "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Abs", "sqrt", "floor", "ceiling", "StrictLessThan",
    "LessThan", "StrictGreaterThan", "GreaterThan", "Equality", "Unequality", "Eq", "Ne", "Lt", "Le", "Gt", "Ge",
    "And", "Or", "Not", "Xor", "BooleanTrue", "BooleanFalse", "true", "false", "True", "False", "Piecewise",
    "ExprCondPair", "oo", "zoo", "nan", "Infinity", "NegativeInfinity", "NaN", "Half", "One", "Zero", "NegativeOne"})
_OPAQUE_FN = re.compile(r"OpaqueUnaryFn_[a-z]+\Z")
_PLAIN_STRING = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z|[-+]?[0-9][0-9.]*([eE][-+]?[0-9]+)?\Z")
_GUARD_ATTRS = frozenset({"size", "stride", "storage_offset", "dim", "numel", "floor", "ceil", "trunc", "sqrt",
                          "isnan", "inf"})
_PLAIN_AST = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Tuple,
              ast.keyword, ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)


def _plain_expression(text: Any, guard: bool) -> bool:
    """Whether ``text`` is arithmetic and comparisons on sizes, and nothing Python could do more with.

    ``guard=False``: a symbolic shape expression (PyTorch hands it to ``sympy.sympify``, which
    evaluates it); ``guard=True``: an input guard (PyTorch ``exec``-s it), which may also index
    ``L['x']`` and call ``.size()``, ``.stride()`` and ``math`` functions.
    """
    if not isinstance(text, str) or len(text) > 20_000:
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, _PLAIN_AST):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _PLAIN_STRING.match(node.value):
            continue  # a symbol's name or a number, as in Symbol('s0', positive=True) or Float('0.5', precision=53)
        if isinstance(node, ast.Name) and (_SYMBOL.match(node.id) or node.id in _EXPR_FUNCTIONS
                                           or _OPAQUE_FN.match(node.id)
                                           or (guard and node.id in ("L", "math", "inf"))):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) \
                and all(k.arg is not None for k in node.keywords):
            continue
        if guard and isinstance(node, ast.Attribute) and node.attr in _GUARD_ATTRS:
            continue
        if guard and isinstance(node, ast.Subscript):
            continue
        return False
    return True


def _op_target_ok(target: Any) -> bool:
    if not isinstance(target, str):
        return False
    if target in _SYM_TARGETS:
        return True
    if not _OP_TARGET.match(target):
        return False
    obj: Any = torch
    try:
        for part in target.split(".")[1:]:
            obj = getattr(obj, part)
    except (AttributeError, RuntimeError):
        return True  # an operator this PyTorch lacks: the loader says so itself, and runs nothing
    return isinstance(obj, (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator))


def _check_program(doc: Any, member: str, name: str) -> None:
    """Every node target, shape expression and guard in a ``models/*.json`` program."""
    if not isinstance(doc, dict):
        raise ModelError(f"model file {name} holds a program ({member}) that is not a JSON object")
    guards = doc.get("guards_code") or []
    if not isinstance(guards, list) or not all(_plain_expression(g, guard=True) for g in guards):
        raise ModelError(f"model file {name} holds input guards ({member}) that are Python code, not size "
                         "checks; the station does not run them")
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "target" in item and "inputs" in item and not _op_target_ok(item["target"]):
                shown = str(item["target"])[:80]
                raise ModelError(f"model file {name} calls {shown!r}, which is not a PyTorch operator; "
                                 "the station does not load it")
            if "expr_str" in item and not _plain_expression(item["expr_str"], guard=False):
                raise ModelError(f"model file {name} holds a shape expression ({member}) that is Python code, "
                                 "not arithmetic on sizes; the station does not load it")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_payload_config(doc: Any, kind: str, member: str, name: str, present: set[str]) -> None:
    entries = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ModelError(f"model file {name} holds a {kind} table ({member}) that is not what torch.export.save writes")
    folder = member.rsplit("/", 1)[0]
    for fqn, entry in entries.items():
        if not isinstance(entry, dict):
            raise ModelError(f"model file {name} holds a {kind} table ({member}) that is not what "
                             "torch.export.save writes")
        path_name = entry.get("path_name")
        if entry.get("use_pickle"):
            raise ModelError(f"model file {name} stores {kind} {str(fqn)[:60]!r} as a pickle, which the station "
                             "never loads; export the model with plain tensors")
        if not isinstance(path_name, str) or not _RAW_PAYLOAD[kind].match(path_name):
            raise ModelError(f"model file {name} stores {kind} {str(fqn)[:60]!r} as {str(path_name)[:60]!r}, "
                             "an object only unpickling can load, which the station never does")
        if f"{folder}/{path_name}" not in present:
            raise ModelError(f"model file {name} lacks the {kind} member {path_name} its table names")


def vet_export_archive(data: bytes, name: str) -> bytes:
    """A ``.pt2`` archive that ``torch.export.load`` can read without unpickling or running anything.

    ``data`` is the whole file. Returns the archive rebuilt from its checked members (so that
    PyTorch reads exactly what was checked); raises :class:`ModelError` with one sentence otherwise.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise ModelError(f"model file {name} is damaged or truncated (not a readable archive)") from None
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ModelError(f"model file {name} holds two archive members of the same name, which PyTorch's "
                         "writer never does")
    if sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
        raise ModelError(f"model file {name} unpacks to more than {MAX_ARCHIVE_BYTES >> 30} GiB")
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise ModelError(f"model file {name} is not laid out as torch.export.save writes it "
                         "(its members do not share one top folder)")
    rest_of = {i.filename: i.filename.split("/", 1)[1] for i in infos}
    present = set(rest_of.values())
    programs = 0
    try:
        for info in infos:
            rest = rest_of[info.filename]
            if rest in _ROOT_FILES or _EXTRA_FILE.match(rest):
                continue
            if rest.startswith(_COMPILED_DIRS):
                raise ModelError(f"model file {name} carries compiled code ({rest}), which the station does not load")
            if (m := _PAYLOAD_CONFIG.match(rest)) and m.group(1) == m.group(3):
                _check_payload_config(_json_member(zf, info, name), m.group(1), rest, name, present)
            elif m := _MODEL_JSON.match(rest):
                _check_program(_json_member(zf, info, name), rest, name)
                programs += 1
            elif _SAMPLE_INPUTS.match(rest):
                blob = zf.read(info)
                if blob:
                    try:
                        torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
                    except Exception:  # noqa: BLE001 - whatever the safe loader refuses, the station refuses
                        raise ModelError(f"model file {name} holds sample inputs ({rest}) that only unpickling "
                                         "can load, which the station never does") from None
            elif re.fullmatch(r"data/(weights|constants)/[^/]+\.pt", rest):
                raise ModelError(f"model file {name} keeps its {rest.split('/')[1]} as a pickle ({rest}, the format "
                                 "of older PyTorch), which the station never loads; export it again with this "
                                 "PyTorch's torch.export.save")
            elif any(_RAW_PAYLOAD[k].match(rest.split("/")[-1]) and rest.startswith(f"data/{k}/")
                     and rest.count("/") == 2 for k in _RAW_PAYLOAD):
                continue
            else:
                raise ModelError(f"model file {name} holds {rest[:80]!r}, which torch.export.save does not write "
                                 "and the station does not load")
        if programs == 0:
            raise ModelError(f"model file {name} holds no torch.export program (models/*.json)")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as rebuilt:
            for info in infos:
                rebuilt.writestr(info.filename, zf.read(info))
    except ModelError:
        raise
    except Exception:  # noqa: BLE001 - zlib errors, bad CRCs and the like while reading the members
        raise ModelError(f"model file {name} is damaged (an archive member cannot be read)") from None
    return out.getvalue()


def _json_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Any:
    try:
        return json.loads(zf.read(info))
    except (ValueError, RecursionError):
        raise ModelError(f"model file {name} holds {info.filename.split('/', 1)[1]}, which is not JSON") from None


def parse_metadata(text: str | bytes) -> dict[str, Any]:
    """The ``config.txt`` dict (JSON or a Python literal); empty when there is none."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    if not text:
        return {}
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("config.txt is neither a JSON object nor a Python dict literal")


def class_names(meta: dict[str, Any], count: int | None) -> tuple[str, ...]:
    names = meta.get("names")
    if isinstance(names, dict):
        try:
            pairs = sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError):
            raise ValueError("config.txt 'names' must map class numbers to names") from None
        n = max(count or 0, pairs[-1][0] + 1 if pairs else 0)
        table = {k: v for k, v in pairs}
        return tuple(table.get(i, f"class{i}") for i in range(n))
    if isinstance(names, (list, tuple)):
        out = [str(v) for v in names]
        return tuple(out + [f"class{i}" for i in range(len(out), count or 0)])
    return tuple(f"class{i}" for i in range(count or 0))


def _imgsz(meta: dict[str, Any]) -> tuple[int, int] | None:
    v = meta.get("imgsz")
    if isinstance(v, (int, float)):
        return int(v), int(v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return int(v[0]), int(v[1])
    return None


class UserModelDetector:
    """A user's torch.export or TorchScript model behind the station's ``Detector`` interface."""

    def __init__(self, path: str | Path, device: str | None = None, confidence: float | None = None) -> None:
        self.path = Path(path).expanduser()
        self.format = _sniff(self.path)
        self.card_file = self.path.with_suffix(".json")  # an optional model card beside the file
        if self.card_file.is_file():
            try:
                card = json.loads(self.card_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelError(f"model card {self.card_file} cannot be read: {e}") from None
            verify_against_card(self.path, card if isinstance(card, dict) else {}, "model file")
        self.device = pick_device(device)
        self.confidence = float(confidence) if confidence is not None else 0.25
        name = self.path.name
        extra = {"config.txt": ""}
        loaded_sha256 = None  # of the bytes PyTorch was given, when they were read here
        if self.format == "torchscript":
            log.warning("loading TorchScript model %s: TorchScript is code and runs whatever its author put in it; "
                        "load only models from people you trust", name)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # the station says its own warning
                    self.module = torch.jit.load(str(self.path), map_location=self.device, _extra_files=extra)
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"model file {name} could not be loaded as TorchScript "
                                 f"({_first_line(e)})") from None
            self.module.eval()
            static = None
        else:
            try:
                data = self.path.read_bytes()
            except OSError as e:
                raise ModelError(f"model file {name} cannot be read: {e.strerror}") from None
            vetted = vet_export_archive(data, name)
            loaded_sha256 = hashlib.sha256(data).hexdigest()
            try:
                ep = torch.export.load(io.BytesIO(vetted), extra_files=extra)
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"model file {name} could not be loaded as a torch.export program "
                                 f"({_first_line(e)})") from None
            static = _static_input_shape(ep)
            try:
                self.module = ep.module().to(self.device)
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"model file {name} cannot run on {self.device} ({_first_line(e)})") from None
        try:
            meta = parse_metadata(extra["config.txt"])
        except ValueError as e:
            raise ModelError(f"model file {name}: {e}") from None
        self._finish(meta, static, loaded_sha256, "TorchScript" if self.format == "torchscript" else "torch.export")

    def _finish(self, meta: dict[str, Any], static: list[Any] | None, loaded_sha256: str | None,
                format_label: str) -> None:
        """Input size, output layout (one run on a grey image), classes and card: the same for every format."""
        name = self.path.name
        self.meta = meta
        size = static[2:] if static and all(isinstance(s, int) for s in static[2:]) else None
        h, w = size or _imgsz(self.meta) or (640, 640)
        self.input_size = (int(w), int(h))  # width, height
        self.batch_one = bool(static and static[0] == 1) or self.meta.get("batch") == 1
        self.half = bool(self.meta.get("half")) and self.device.startswith("cuda")
        self.sha256 = loaded_sha256 or sha256_of(self.path)
        self.name = f"{name} {self.sha256[:8]}"
        self._layout, n_classes, self._has_embedding = self._probe()
        try:
            self.classes = class_names(self.meta, n_classes)
        except ValueError as e:
            raise ModelError(f"model file {name}: {e}") from None
        if n_classes is not None and len(self.classes) < n_classes:
            raise ModelError(f"model file {name} scores {n_classes} classes but config.txt names only "
                             f"{len(self.classes)}")
        self.embedding_source = ("model: its own embedding output" if self._has_embedding else
                                 "image: luminance grid, colour moments and histogram of the frame "
                                 "(the model gives no embedding; this is not learned features)")
        self.card = {"name": name, "format": format_label,
                     "path": str(self.path), "sha256": self.sha256, "classes": list(self.classes),
                     "input_size": {"width": self.input_size[0], "height": self.input_size[1]},
                     "output_layout": self._layout, "embedding": self.embedding_source, "metadata": _plain(self.meta)}

    # ------------------------------------------------------------------ running

    @property
    def _tensor_device(self) -> str:
        """Where the input tensor is made: the model's device (the CPU for ONNX Runtime, which takes arrays)."""
        return self.device

    def _forward(self, x: torch.Tensor) -> Any:
        if self.half:
            x = x.half()
        with torch.inference_mode():
            if self.batch_one and x.shape[0] > 1:
                outs = [self.module(x[i:i + 1]) for i in range(x.shape[0])]
                return _cat_outputs(outs)
            return self.module(x)

    def _split(self, out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(out, dict):
            out = list(out.values())
        if isinstance(out, (list, tuple)):
            tensors = [o for o in out if isinstance(o, torch.Tensor)]
            if not tensors:
                raise ValueError("it returns no tensor")
            det = tensors[0]
            emb = next((o for o in tensors[1:] if o.ndim == 2 and o.shape[0] == det.shape[0]), None)
            return det, emb
        if isinstance(out, torch.Tensor):
            return out, None
        raise ValueError(f"it returns a {type(out).__name__}, not a tensor")

    def _probe(self) -> tuple[str, int | None, bool]:
        """Run the model once on a grey image to learn, and check, its output layout."""
        w, h = self.input_size
        x = torch.full((1, 3, h, w), 114 / 255.0, device=self._tensor_device)
        try:
            det, emb = self._split(self._forward(x))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"model file {self.path.name} fails on a {w}x{h} RGB input ({_first_line(e)})") from None
        layout = _layout_of(det)
        if layout == "end2end" and self.meta.get("end2end") is False:
            layout = "yolo_t"  # (N, A, 6) of two classes, anchors first: the metadata says it is not end-to-end
        if layout is None:
            raise ModelError(f"model file {self.path.name} returns a tensor of shape {tuple(det.shape)}, which is "
                             "neither (batch, 4 + classes, anchors), (batch, anchors, 4 + classes) nor (batch, boxes, 6)")
        classes = det.shape[1] - 4 if layout == "yolo" else (det.shape[2] - 4 if layout == "yolo_t" else None)
        return layout, classes, emb is not None

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if not frames:
            return []
        t0 = time.perf_counter()
        w, h = self.input_size
        imgs, lbs = [], []
        for f in frames:
            img, lb = letterbox(f.image, w, h, interpolation=cv2.INTER_LINEAR)  # bilinear, as Ultralytics
            imgs.append(img[:, :, ::-1] if f.channel_order == "BGR" else img)
            lbs.append(lb)
        x = to_tensor(imgs, channels_last=False).to(self._tensor_device)
        det, emb = self._split(self._forward(x))
        det = det.float()
        results = []
        for i, (f, lb) in enumerate(zip(frames, lbs)):
            boxes = self._decode(det[i]).cpu()
            xy = lb.to_frame(boxes[:, :4], f.width, f.height)
            e = emb[i].float().cpu().numpy() if emb is not None else image_embedding(f.as_order("BGR"))
            results.append((f, xy, boxes, e))
        ms = (time.perf_counter() - t0) * 1000.0 / len(frames)
        out = []
        for f, xy, boxes, e in results:
            items = []
            for b, s, c in zip(xy.tolist(), boxes[:, 4].tolist(), boxes[:, 5].tolist()):
                c = int(c)
                if b[2] > b[0] and b[3] > b[1] and 0 <= c < len(self.classes):
                    items.append(Box(b[0], b[1], b[2], b[3], c, self.classes[c], float(s)))
            out.append(Detections(tuple(items), np.ascontiguousarray(e, dtype=np.float32), ms))
        return out

    def _decode(self, d: torch.Tensor) -> torch.Tensor:
        """One image's raw output to K x 6 (x0 y0 x1 y1 score class) in input pixels."""
        if self._layout == "end2end":
            return d[d[:, 4] >= self.confidence]
        p = d if self._layout == "yolo_t" else d.transpose(0, 1)  # anchors x (4 + C)
        scores, cls = p[:, 4:].max(dim=1)
        keep = scores >= self.confidence
        p, scores, cls = p[keep], scores[keep], cls[keep]
        if scores.numel() > MAX_CANDIDATES:
            top = scores.topk(MAX_CANDIDATES).indices
            p, scores, cls = p[top], scores[top], cls[top]
        cx, cy, bw, bh = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=1)
        k = nms(boxes, scores, cls, NMS_IOU)
        return torch.cat([boxes[k], scores[k, None], cls[k, None].float()], dim=1)


def _layout_of(det: torch.Tensor) -> str | None:
    if det.ndim != 3:
        return None
    if det.shape[2] == 6 and det.shape[1] != 6:
        return "end2end"  # (N, K, 6); a YOLO output has far more anchors than channels
    if det.shape[2] > 4 and det.shape[1] > det.shape[2]:
        return "yolo_t"  # (N, A, 4 + C): the same, anchors first
    if det.shape[1] > 4 and det.shape[2] >= 1:
        return "yolo"
    return None


def _cat_outputs(outs: list[Any]) -> Any:
    first = outs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outs, dim=0)
    if isinstance(first, (list, tuple)):
        return type(first)(_cat_outputs([o[i] for o in outs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _cat_outputs([o[k] for o in outs]) for k in first}
    return first


def _static_input_shape(ep: Any) -> list[Any] | None:
    try:
        first = ep.graph_signature.user_inputs[0]
        for node in ep.graph.nodes:
            if node.op == "placeholder" and node.name == first:
                return [int(s) if isinstance(s, int) else s for s in node.meta["val"].shape]
    except Exception:  # noqa: BLE001 - a program without the usual metadata just has no static size
        return None
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg[:160]


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(meta, default=str))
