"""Checks of the machine a station runs on, as a technician would make them.

Each check is a plain function returning one :class:`Check` (or a list of them): a name, a
status (``OK``, ``WARN`` or ``FAIL``) and one sentence saying what was found and, when
something is wrong, what to do. Every path and command a check uses is a parameter, so tests
can point a check at a broken file. No check raises: :func:`run_all` turns an unexpected
exception into a ``FAIL`` line. Qt is never imported here: the Qt platform plugin is probed
in a child process (with a time limit), so a broken Qt can neither hang nor crash the checks.
"""

from __future__ import annotations

import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.core.files import sha256_file

OK, WARN, FAIL = "OK", "WARN", "FAIL"
GIB = 1 << 30
MIN_PYTHON = (3, 11)
DEFAULT_MIN_FREE_BYTES = 5 * GIB
MODEL_CARD_NAME = "builtin_detector.json"

# (shown as, distribution names to look for, module imported to prove it loads or None)
# Qt and pyqtgraph are not imported here (the engine stays Qt-free): the Qt probe proves they load.
KEY_PACKAGES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("PySide6", ("PySide6-Essentials", "PySide6"), None),
    ("pyqtgraph", ("pyqtgraph",), None),
    ("numpy", ("numpy",), "numpy"),
    ("opencv", ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless"), "cv2"),
    ("torch", ("torch",), "torch"),
    ("sqlite-utils", ("sqlite-utils",), "sqlite_utils"),
)
_PACKAGE_MODULES = {"PySide6": "PySide6", "pyqtgraph": "pyqtgraph"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


# ---------------------------------------------------------------------------------------- software


def check_python(version: tuple[int, ...] | None = None, minimum: tuple[int, int] = MIN_PYTHON) -> Check:
    v = tuple(sys.version_info[:3]) if version is None else tuple(version)
    text = ".".join(map(str, v))
    if v[:2] < minimum:
        return Check("Python", FAIL, f"{text} is too old: the station needs Python {'.'.join(map(str, minimum))} "
                                     f"or newer")
    return Check("Python", OK, f"{text} ({sys.executable})")


def _dist_version(dists: Sequence[str]) -> str | None:
    for d in dists:
        try:
            return importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_package(shown: str, dists: Sequence[str], module: str | None) -> Check:
    """One package: installed, its version, and (for the Qt-free ones) that it imports."""
    version = _dist_version(dists)
    if module is None:
        found = importlib.util.find_spec(_PACKAGE_MODULES.get(shown, shown)) is not None
        if version is None and not found:
            return Check(shown, FAIL, "not installed: reinstall the station (packaging/install.sh, or pip install -e .)")
        return Check(shown, OK, version or "installed (version unknown)")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        return Check(shown, FAIL, "not installed: reinstall the station (packaging/install.sh, or pip install -e .)")
    except Exception as e:  # a broken binary package: missing system library, ABI mismatch
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Check(shown, FAIL, f"installed ({version or 'version unknown'}) but cannot be imported: {first}")
    return Check(shown, OK, version or str(getattr(mod, "__version__", "version unknown")))


def check_packages(packages: Sequence[tuple[str, Sequence[str], str | None]] = KEY_PACKAGES) -> list[Check]:
    return [check_package(*p) for p in packages]


# ---------------------------------------------------------------------------------------- Qt


def _telling_line(text: str) -> str:
    """The line of a failed Qt start that says why (Qt prints several)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for key in ("could not", "cannot", "failed to", "error"):
        for ln in lines:
            if key in ln.lower():
                return ln
    return lines[-1] if lines else "no message"


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def missing_libraries(plugin: Path, ldd: str = "ldd", timeout_s: float = 10.0) -> list[str] | None:
    """Shared libraries ``plugin`` needs that the system lacks (``ldd``'s "not found"); ``None``
    when this cannot be told (no ldd, no plugin)."""
    if not plugin.exists() or shutil.which(ldd) is None:
        return None
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=timeout_s).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sorted({ln.split("=>")[0].strip() for ln in out.splitlines() if "not found" in ln})


def check_qt_platform(probe: Sequence[str], environ: Mapping[str, str] | None = None,
                      timeout_s: float = 20.0) -> Check:
    """Start Qt in a child process (``probe`` prints a JSON object with ``platform`` and ``plugins``).

    With ``QT_QPA_PLATFORM`` set, that plugin is tried; with a display (``DISPLAY`` or
    ``WAYLAND_DISPLAY``), Qt's own choice; with neither, the offscreen plugin, and the X11 (xcb)
    plugin's libraries are checked with ``ldd`` since no window can be opened to try it.
    """
    env = dict(os.environ if environ is None else environ)
    name = "Qt platform"
    chosen = env.get("QT_QPA_PLATFORM", "")
    display = env.get("WAYLAND_DISPLAY") or env.get("DISPLAY")
    if not chosen and not display:
        env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        r = subprocess.run(list(probe), capture_output=True, text=True, timeout=timeout_s, env=env,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(name, FAIL, f"Qt did not start within {timeout_s:g} s (a hung display connection or driver)")
    except OSError as e:
        return Check(name, FAIL, f"cannot run the Qt probe {probe[0]}: {e.strerror}")
    if r.returncode != 0:
        how = f"crashed ({_signal_name(r.returncode)})" if r.returncode < 0 else f"exit status {r.returncode}"
        plugin = f"platform plugin {chosen!r}" if chosen else "Qt"
        return Check(name, FAIL, f"{plugin} cannot start, {how}: {_telling_line(r.stderr + r.stdout)}; "
                                 f"install the system libraries with packaging/os-deps.sh")
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return Check(name, FAIL, f"the Qt probe answered something unexpected: {r.stdout.strip()[:200]!r}")
    loaded = info.get("platform", "?")
    if chosen or display:
        where = f"QT_QPA_PLATFORM={chosen}" if chosen else f"display {display}"
        return Check(name, OK, f"Qt {info.get('qt', '?')} started with the {loaded!r} plugin ({where})")
    missing = missing_libraries(Path(info.get("plugins", "")) / "platforms" / "libqxcb.so")
    if missing:
        return Check(name, FAIL, f"the X11 (xcb) plugin cannot load, missing {', '.join(missing)}: "
                                 f"run packaging/os-deps.sh")
    xcb = "all present" if missing == [] else "not checked (no ldd or no plugin file)"
    return Check(name, WARN, f"no display in this session (DISPLAY unset): Qt {info.get('qt', '?')} starts "
                             f"offscreen, the X11 (xcb) plugin's libraries are {xcb}; the window needs a "
                             f"desktop session")


# ---------------------------------------------------------------------------------------- hardware


def check_gpu(nvidia_smi: str = "nvidia-smi", timeout_s: float = 15.0) -> Check:
    """An NVIDIA GPU, and whether PyTorch and CuPy can use it; the reason when they cannot."""
    name = "GPU"
    if shutil.which(nvidia_smi) is None:
        return Check(name, OK, "no NVIDIA GPU (nvidia-smi not found): the CPU path is used")
    try:
        r = subprocess.run([nvidia_smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(name, WARN, f"nvidia-smi did not answer within {timeout_s:g} s: the driver is stuck; "
                                 f"the CPU path is used")
    except OSError as e:
        return Check(name, WARN, f"nvidia-smi cannot run ({e.strerror}): the CPU path is used")
    if r.returncode != 0 or not r.stdout.strip():
        why = _telling_line(r.stdout + r.stderr)
        return Check(name, WARN, f"nvidia-smi failed ({why}): the NVIDIA driver is not working; "
                                 f"the CPU path is used")
    gpus = "; ".join(ln.strip().replace(", ", " driver ") for ln in r.stdout.strip().splitlines())
    problems = []
    try:
        import torch

        if not torch.cuda.is_available():
            problems.append(f"PyTorch {torch.__version__} sees no CUDA device "
                            f"({'a CPU-only build' if torch.version.cuda is None else 'driver too old?'})")
    except Exception as e:
        problems.append(f"PyTorch cannot be imported ({type(e).__name__})")
    cupy = _cupy_state()
    if cupy is not None:
        problems.append(cupy)
    if problems:
        return Check(name, WARN, f"{gpus}, but {'; '.join(problems)}: the CPU path is used")
    return Check(name, OK, f"{gpus}: PyTorch CUDA and CuPy work")


def _cupy_state() -> str | None:
    """``None`` when CuPy works, else why not."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (install the gpu extra: pip install -e '.[gpu]')"
    try:
        import cupy

        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            return "CuPy sees no CUDA device"
        cupy.arange(4).sum().item()  # a tiny allocation and kernel: the whole path works
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"CuPy cannot use the GPU ({type(e).__name__}: {first})"
    return None


def check_cameras(pattern: str = "/dev/video*") -> Check:
    name = "cameras"
    devices = sorted(glob.glob(pattern))
    if not devices:
        return Check(name, WARN, f"no camera devices found ({pattern}): only the simulated line, video files, "
                                 f"folders and network streams can be watched")
    usable = [d for d in devices if os.access(d, os.R_OK | os.W_OK)]
    if not usable:
        user = os.environ.get("USER") or str(os.getuid())
        return Check(name, WARN, f"found {', '.join(devices)} but this user may not open them: "
                                 f"add {user} to the 'video' group (sudo usermod -aG video {user}) and log in again")
    return Check(name, OK, f"{len(devices)} found: {', '.join(devices)}"
                           + ("" if len(usable) == len(devices) else f" ({len(usable)} usable by this user)"))


# ---------------------------------------------------------------------------------------- data


def check_data_dir(path: str | Path, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES) -> Check:
    """The data directory can be written (a file is really written and removed) and has room."""
    name = "data directory"
    d = Path(path).expanduser()
    if d.exists() and not d.is_dir():
        return Check(name, FAIL, f"{d} is not a directory: remove it or choose another with --data-dir")
    existing = d
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return Check(name, FAIL, f"{d} cannot be created: {existing} is a file, not a directory")
    if d.exists():
        try:
            with tempfile.NamedTemporaryFile(dir=d, prefix=".doctor-") as f:
                f.write(b"x")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            return Check(name, FAIL, f"{d} is not writable ({e.strerror}): fix its owner or permissions")
        what = f"{d} is writable"
    else:
        if not os.access(existing, os.W_OK | os.X_OK):
            return Check(name, FAIL, f"{d} does not exist and cannot be created: {existing} is not writable")
        what = f"{d} does not exist yet (created at first start)"
    try:
        free = shutil.disk_usage(existing).free
    except OSError as e:
        return Check(name, WARN, f"{what}, but its free space cannot be read ({e.strerror})")
    if free < min_free_bytes:
        return Check(name, WARN, f"{what}, but only {_gib(free)} free (warning under {_gib(min_free_bytes)}): "
                                 f"make room before images and trends fill the disk")
    return Check(name, OK, f"{what}, {_gib(free)} free")


def database_files(data_dir: str | Path) -> list[Path]:
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        return []
    return sorted({p for pat in ("*.sqlite", "*.db") for p in d.glob(pat) if p.is_file()})


def check_database(path: str | Path, timeout_s: float = 10.0) -> Check:
    """``PRAGMA integrity_check`` on one SQLite file, opened read-only."""
    p = Path(path)
    name = f"database {p.name}"
    con = None
    try:
        try:
            con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)
            rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
        except sqlite3.OperationalError:
            # A WAL database may need its -shm file created to be read: open it normally.
            if con is not None:
                con.close()
            con = sqlite3.connect(p, timeout=timeout_s)
            rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as e:
        return Check(name, FAIL, f"{p} cannot be read as SQLite ({e}): restore it from a backup or move it aside")
    finally:
        if con is not None:
            con.close()
    if rows == ["ok"]:
        return Check(name, OK, f"{p}: integrity ok ({p.stat().st_size / 1024:.0f} KiB)")
    more = f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else ""
    return Check(name, FAIL, f"{p} is damaged: {rows[0] if rows else 'no answer'}{more}; restore it from a backup")


def check_databases(data_dir: str | Path) -> list[Check]:
    files = database_files(data_dir)
    if not files:
        return [Check("databases", OK, f"no database in {Path(data_dir).expanduser()} yet (nothing to check)")]
    return [check_database(f) for f in files]


def default_model_card() -> Path:
    import resources

    return resources.path(MODEL_CARD_NAME)


def check_model(card_path: str | Path | None = None) -> Check:
    """The weights file the model card names has the SHA-256 the card states."""
    name = "built-in model"
    card = Path(card_path) if card_path is not None else default_model_card()
    if not card.exists():
        return Check(name, WARN, f"no built-in model installed ({card} is missing): the station needs --model "
                                 f"to detect defects")
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return Check(name, FAIL, f"model card {card} cannot be read: {e}")
    if not isinstance(data, dict) or not data.get("weights_file") or not data.get("sha256"):
        return Check(name, FAIL, f"model card {card} does not name its weights_file and sha256")
    weights = card.parent / str(data["weights_file"])
    if not weights.is_file():
        return Check(name, FAIL, f"weights {weights} named by {card.name} are missing: reinstall the station")
    try:
        actual = sha256_file(weights)
    except OSError as e:
        return Check(name, FAIL, f"weights {weights} cannot be read ({e.strerror})")
    expected = str(data["sha256"]).lower()
    if actual != expected:
        return Check(name, FAIL, f"weights {weights.name} do not match their card: SHA-256 {actual[:12]}… "
                                 f"instead of {expected[:12]}… (damaged or replaced file): reinstall the station")
    return Check(name, OK, f"{weights.name} matches its card (SHA-256 {actual[:12]}…)")


# ---------------------------------------------------------------------------------------- all


def run_all(data_dir: str | Path, qt_probe: Sequence[str], model_card: str | Path | None = None,
            min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, camera_pattern: str = "/dev/video*",
            environ: Mapping[str, str] | None = None, qt_timeout_s: float = 20.0,
            nvidia_smi: str = "nvidia-smi") -> list[Check]:
    """Every check, in the order a technician reads them. A check that breaks is a FAIL line."""
    steps: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("Python", check_python),
        ("packages", check_packages),
        ("Qt platform", lambda: check_qt_platform(qt_probe, environ, qt_timeout_s)),
        ("GPU", lambda: check_gpu(nvidia_smi)),
        ("cameras", lambda: check_cameras(camera_pattern)),
        ("data directory", lambda: check_data_dir(data_dir, min_free_bytes)),
        ("databases", lambda: check_databases(data_dir)),
        ("built-in model", lambda: check_model(model_card)),
    ]
    out: list[Check] = []
    for name, step in steps:
        try:
            got = step()
        except Exception as e:  # a check must never take the others down
            got = Check(name, FAIL, f"the check itself failed: {type(e).__name__}: {e}")
        out.extend(got if isinstance(got, list) else [got])
    return out


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}


def machine() -> str:
    return f"{platform.node()} ({platform.system()} {platform.release()}, {platform.machine()}, " \
           f"{os.cpu_count()} CPU cores)"
