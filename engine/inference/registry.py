"""The station's model registry: which models it knows, which one runs (the champion), and the ones before it.

The registry lives in ``models/`` in the data folder: each model copied in as ``<name><suffix>`` with its card
``<name>.json`` beside it, where ``<name>`` is ``m-`` and the first 12 hex digits of the weights' SHA-256, and
one state file ``registry.json`` (written atomically: a reader sees the old state or the new one, never half).
Each model has a status:

* ``champion``: the one model the station runs when no other model is asked for; at most one.
* ``challenger``: registered (proven: loaded and run on one frame), waiting for ``model challenge``/``promote``.
* ``retired``: was champion once, replaced by a promotion or taken back by a rollback.

With no champion registered, the built-in model (``builtin``) is the champion. The champions follow each other
on a stack (``history``): :func:`promote` pushes the new one (the champion it replaces is retired; a rollback can
bring it back), :func:`rollback` pops the current one, which is retired, and makes the previous one champion
again (the built-in model when none is left). Who signs these, and the audit entry, are the caller's job.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.core.errors import StationError
from engine.core.files import sha256_file, write_atomic

FOLDER = "models"
STATE = "registry.json"
FORMAT = "inspection-station model registry"
BUILTIN = "builtin"
STATUSES = ("champion", "challenger", "retired")
SUFFIXES = (".pt", ".onnx", ".pt2", ".torchscript", ".ts")


class RegistryError(StationError):
    """The registry cannot be read or changed; one sentence."""


@dataclass(frozen=True)
class Entry:
    """One registered model (``name`` ``builtin``: the shipped model, ``path`` None)."""

    name: str
    sha256: str
    status: str
    path: Path | None
    card: dict[str, Any]
    added_utc: str = ""
    source: str = ""

    @property
    def title(self) -> str:
        return str(self.card.get("name") or self.name)

    def summary(self) -> dict[str, Any]:
        q = self.card.get("quality") if isinstance(self.card.get("quality"), dict) else {}
        return {"name": self.name, "sha256": self.sha256, "status": self.status, "title": self.title,
                "path": str(self.path) if self.path else None, "added_utc": self.added_utc, "source": self.source,
                "classes": list(self.card.get("classes") or []), "f1": q.get("f1"), "map50": q.get("map50"),
                "lineage": self.card.get("lineage")}


def folder(data_dir: Path) -> Path:
    return Path(data_dir) / FOLDER


def state_path(data_dir: Path) -> Path:
    return folder(data_dir) / STATE


def _utc(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _empty() -> dict[str, Any]:
    return {"format": FORMAT, "version": 1, "models": {}, "history": []}


def read_state(data_dir: Path) -> dict[str, Any]:
    """The state file's content (an empty registry when there is none); :class:`RegistryError` when damaged."""
    p = state_path(data_dir)
    try:
        state = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _empty()
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RegistryError(f"the model registry {p} is damaged ({str(e).splitlines()[0][:80]}); move it aside to "
                            "start again with the built-in model as champion") from None
    ok = (isinstance(state, dict) and state.get("format") == FORMAT and isinstance(state.get("models"), dict)
          and isinstance(state.get("history"), list)
          and all(isinstance(m, dict) and m.get("status") in STATUSES and isinstance(m.get("file"), str)
                  for m in state["models"].values())
          and all(h in state["models"] for h in state["history"]))
    if not ok:
        raise RegistryError(f"the model registry {p} is damaged (not the registry's layout); move it aside to start "
                            "again with the built-in model as champion")
    return state


def _write(data_dir: Path, state: dict[str, Any]) -> None:
    write_atomic(state_path(data_dir), json.dumps(state, indent=1, sort_keys=True) + "\n")


@contextmanager
def _locked(data_dir: Path) -> Iterator[dict[str, Any]]:
    """The state for a change, under the registry's lock; written back atomically when the block succeeds."""
    d = folder(data_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RegistryError(f"the model registry in {d} cannot be written: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = read_state(data_dir)
        yield state
        try:
            _write(data_dir, state)
        except OSError as e:
            raise RegistryError(f"the model registry {state_path(data_dir)} cannot be written: {e.strerror}") from None
    finally:
        os.close(fd)


def builtin_entry(status: str) -> Entry:
    from engine.inference.builtin import builtin_paths, read_card

    weights, card_file = builtin_paths()
    card = read_card(card_file)
    return Entry(BUILTIN, str(card.get("sha256") or ""), status, None, card, source=str(weights))


def _entry(data_dir: Path, name: str, m: dict[str, Any]) -> Entry:
    card: dict[str, Any] = {}
    cp = folder(data_dir) / f"{name}.json"
    if cp.is_file():
        try:
            loaded = json.loads(cp.read_text(encoding="utf-8"))
            card = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            card = {}
    return Entry(name, str(m.get("sha256", "")), str(m["status"]), folder(data_dir) / m["file"], card,
                 str(m.get("added_utc", "")), str(m.get("source", "")))


def entries(data_dir: Path) -> list[Entry]:
    """Every model, the built-in one first, then in the order they were added."""
    state = read_state(data_dir)
    models = state["models"]
    has_champion = any(m["status"] == "champion" for m in models.values())
    out = [builtin_entry("retired" if has_champion else "champion")]  # the first champion of every station
    out += [_entry(data_dir, n, m) for n, m in sorted(models.items(), key=lambda kv: kv[1].get("added_utc", ""))]
    return out


def champion(data_dir: Path) -> Entry:
    """The model the station runs: the registered champion, else the built-in model."""
    return next(e for e in entries(data_dir) if e.status == "champion")


def champion_path(data_dir: Path) -> str | None:
    """The champion's weights file (None: the built-in model); :class:`RegistryError` when the registry is
    damaged or the champion's file has gone."""
    e = champion(data_dir)
    if e.path is not None and not e.path.is_file():
        raise RegistryError(f"the champion {e.name}'s file {e.path} is missing from the model registry")
    return None if e.path is None else str(e.path)


def state_token(data_dir: Path) -> tuple[int, int]:
    """A cheap fingerprint of the state file (modification time and size): it changes with every change."""
    try:
        st = state_path(data_dir).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (0, 0)


def resolve(data_dir: Path, ref: str) -> Entry | None:
    """The registered model called ``ref``: ``builtin``, a name, or an unambiguous prefix of a name or SHA-256
    (at least 4 characters); None when none matches. Two matches are a :class:`RegistryError`."""
    ref = ref.strip().lower()
    all_ = entries(data_dir)
    for e in all_:
        if ref == e.name:
            return e
    if len(ref) < 4:
        return None
    hits = [e for e in all_ if e.sha256.startswith(ref) or e.name.startswith(ref)
            or (e.name.startswith("m-") and e.name[2:].startswith(ref))]
    if len(hits) > 1:
        raise RegistryError(f"{ref!r} matches {len(hits)} models ({', '.join(e.name for e in hits)}); give more of "
                            "the name")
    return hits[0] if hits else None


def prove_file(path: Path) -> tuple[Any, str]:
    """Load the model file and run it on one frame: the detector and its one line (raises ``ModelError``)."""
    from engine.inference import load_detector, prove

    det = load_detector(path, device="cpu")
    return det, prove(det)


def add(data_dir: Path, path: str | Path, by: str = "") -> tuple[Entry, bool]:
    """Copy the model at ``path`` (and its card ``.json`` beside it) into the registry as a challenger, after
    proving it (loaded and run on one frame); the entry and whether it is new (a file already registered is
    returned as it is)."""
    src = Path(path).expanduser()
    if src.suffix.lower() not in SUFFIXES:
        raise RegistryError(f"{src.name} is not a model file the station runs (.pt with its card, .onnx, .pt2, "
                            "TorchScript)")
    det, _ = prove_file(src)
    sha = sha256_file(src)
    from engine.inference.builtin import builtin_paths

    if sha == sha256_file(builtin_paths()[0]):
        return next(e for e in entries(data_dir) if e.name == BUILTIN), False
    name = f"m-{sha[:12]}"
    card_src = src.with_suffix(".json")
    with _locked(data_dir) as state:
        if name in state["models"]:
            return _entry(data_dir, name, state["models"][name]), False
        d = folder(data_dir)
        dest = d / f"{name}{src.suffix.lower()}"
        try:
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            card = dict(getattr(det, "card", {}) or {})
            if card_src.is_file():
                write_atomic(d / f"{name}.json", card_src.read_bytes())
            else:
                card.setdefault("sha256", sha)
                write_atomic(d / f"{name}.json", json.dumps(card, indent=1, default=str) + "\n")
        except OSError as e:
            raise RegistryError(f"cannot copy {src} into the model registry {d}: {e.strerror}") from None
        state["models"][name] = {"sha256": sha, "file": dest.name, "status": "challenger", "added_utc": _utc(),
                                 "added_by": by, "source": str(src.resolve())}
    return _entry(data_dir, name, read_state(data_dir)["models"][name]), True


def promote(data_dir: Path, name: str) -> tuple[Entry, Entry]:
    """Make the registered model ``name`` (or ``builtin``) the champion; (old champion, new champion). The old
    one is retired (and stays on the stack, so a rollback brings it back); promoting ``builtin`` leaves the stack as
    it is, with nothing to roll back to."""
    with _locked(data_dir) as state:
        old = _current(data_dir, state)
        if name == old.name:
            raise RegistryError(f"{name} is the champion already")
        models = state["models"]
        if name != BUILTIN and name not in models:
            raise RegistryError(f"no model {name} in the registry (model list shows them)")
        for m in models.values():
            if m["status"] == "champion":
                m["status"] = "retired"
        if name != BUILTIN:
            models[name]["status"] = "champion"
            models[name]["promoted_utc"] = _utc()
            state["history"] = [h for h in state["history"] if h != name] + [name]
    return old, champion(data_dir)


def rollback(data_dir: Path) -> tuple[Entry, Entry]:
    """Take the champion back: it is retired and the champion before it (the built-in model when there was none)
    is champion again; (demoted, reinstated)."""
    with _locked(data_dir) as state:
        old = _current(data_dir, state)
        if old.name == BUILTIN:
            raise RegistryError("the built-in model is the champion; there is no earlier champion to roll back to")
        models = state["models"]
        models[old.name]["status"] = "retired"
        models[old.name]["rolled_back_utc"] = _utc()
        history = [h for h in state["history"] if h != old.name]
        state["history"] = history
        if history:
            models[history[-1]]["status"] = "champion"
    return old, champion(data_dir)


def _current(data_dir: Path, state: dict[str, Any]) -> Entry:
    for n, m in state["models"].items():
        if m["status"] == "champion":
            return _entry(data_dir, n, m)
    return builtin_entry("champion")


def choice_note(data_dir: Path, explicit: str | None) -> str:
    """One line on which model runs and why, for a station with registered models ("" for one without): the
    champion, or the explicitly given model in its place."""
    try:
        if not read_state(data_dir)["models"]:
            return ""
        c = champion(data_dir)
    except RegistryError:
        return ""
    if explicit:
        return f"model {explicit} as asked for; the registry's champion {c.name} ({c.title}) is not used"
    return f"model: the champion {c.name} ({c.title}, sha256 {c.sha256[:12]}...)"


def lineage_text(lineage: Any) -> str:
    """A card's lineage in a few words: the parent model and the bundles it was trained on."""
    if not lineage:
        return ""
    if not isinstance(lineage, dict):
        return str(lineage)[:60]
    parts = []
    parent = lineage.get("parent") or lineage.get("base")
    if isinstance(parent, dict):
        parent = parent.get("name") or str(parent.get("sha256", ""))[:12]
    if parent:
        parts.append(f"from {str(parent)[:32]}")
    bundles = lineage.get("bundles") or []
    if bundles:
        names = [Path(str(b.get("path", "?") if isinstance(b, dict) else b)).name for b in bundles]
        parts.append(f"on {len(names)} bundle{'s' if len(names) != 1 else ''} ({', '.join(names[:3])})")
    return ", ".join(parts) or ", ".join(f"{k} {v}" for k, v in list(lineage.items())[:3])


def lineage_bundles(card: dict[str, Any]) -> list[str]:
    """The paths of the bundles a card's lineage says the model was trained on."""
    lineage = card.get("lineage") if isinstance(card, dict) else None
    bundles = lineage.get("bundles") if isinstance(lineage, dict) else None
    return [str(b.get("path") if isinstance(b, dict) else b) for b in bundles or []]
