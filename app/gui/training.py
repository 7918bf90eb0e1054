""""Train a model from bundles…" (Ctrl+Shift+M, Tools menu and the Models dock): fine-tuning from the window.

An engineer picks feedback bundles; the run is signed with the PIN again ("authored"), then runs in a child
process (``python -m engine.inference.train_job``, at lower priority) so that the live line keeps the cores
and the window stays responsive; a QProcess reads its lines without a thread of ours. It trains from the
station's champion (the built-in model until another is promoted), writes ``training/<stamp>.pt`` and its card
in the data directory, and takes the new model into the registry as a challenger: promoting it stays a signed
decision of its own, after ``model challenge``. Cancel (or closing the window) stops the process; an
interrupted run writes nothing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from app.gui import actions, files
from engine.inference import registry
from widgets.train_dialog import TrainDialog

SHORTCUT = "Ctrl+Shift+M"
FOLDER = "training"


class TrainingController(QtCore.QObject):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.w = window
        self.data_dir = Path(window.data_dir)
        self.dialog: TrainDialog | None = None
        self.process: QtCore.QProcess | None = None
        self.overrides: dict[str, Any] = {}  # FinetuneConfig fields for short runs (tests, trials)
        self.result: dict[str, Any] | None = None
        self.spec_path: Path | None = None
        self._out = b""
        self._err = b""
        self._answer: dict[str, Any] | None = None
        self._cancelled = False
        self._last_err = ""  # the child's last line on stderr: what a crash said

    # ------------------------------------------------------------------ the dialog

    def _base_text(self) -> str:
        try:
            entry = registry.champion(self.data_dir)
        except registry.RegistryError as e:
            return f"the model registry cannot be read: {e}"
        return f"the champion, {entry.name} ({entry.title})"

    def open(self) -> TrainDialog:
        if self.dialog is None:
            self.dialog = TrainDialog(self._base_text(), self.w)
            self.dialog.add_requested.connect(self._add)
            self.dialog.train_requested.connect(self.start)
            self.dialog.cancel_requested.connect(self.cancel)
        elif not self.busy:
            self.dialog.set_base(self._base_text())
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def _add(self) -> None:
        assert self.dialog is not None
        path = files.existing_directory(self.dialog, "A feedback bundle (its folder)", str(Path.home()))
        if path:
            self.dialog.set_bundles([*self.dialog.bundles, path])

    # ------------------------------------------------------------------ the run

    def start(self, bundles: list[str], seed: int = 0, minutes: float = 15.0, pin: str | None = None) -> bool:
        """Sign (``pin``: the PIN without the dialog), then start the child process; False when it did not
        start (the dialog says why)."""
        if self.busy:
            return False
        dialog = self.open()
        auth = getattr(self.w, "auth", None)
        by = ""
        if auth is not None:
            s = auth.session
            if s is None or not s.can("models"):
                dialog.finish(False, "Training a model needs the engineer role.")
                return False
            if not auth.sign("authored", "model_training_started", obj=", ".join(bundles), label="Train a model",
                             pin=pin):
                dialog.finish(False, "Not signed: nothing was trained.")
                return False
            by = s.badge
        try:
            base = registry.champion_path(self.data_dir)
        except registry.RegistryError as e:
            dialog.finish(False, f"The model registry cannot be read: {e}")
            return False
        folder = self.data_dir / FOLDER
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        out = folder / f"trained-{stamp}.pt"
        spec = {"bundles": [str(Path(b).expanduser()) for b in bundles], "base": base, "out": str(out),
                "seed": int(seed), "minutes": float(minutes) or None, "data_dir": str(self.data_dir), "by": by,
                "config": dict(self.overrides),
                "command": "trained from the window: " + ", ".join(bundles) + f", seed {seed}"}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.spec_path = out.with_suffix(".spec.json")
            self.spec_path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
        except OSError as e:
            dialog.finish(False, f"Cannot write to {folder}: {e.strerror}.")
            return False
        p = QtCore.QProcess(self)
        p.setObjectName("trainingProcess")
        p.setProgram(sys.executable)
        p.setArguments(["-m", "engine.inference.train_job", str(self.spec_path)])
        p.setWorkingDirectory(str(Path(__file__).resolve().parents[2]))  # the station's packages import from here
        env = QtCore.QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        p.setProcessEnvironment(env)
        p.readyReadStandardOutput.connect(self._read_out)
        p.readyReadStandardError.connect(self._read_err)
        p.finished.connect(self._finished)
        p.errorOccurred.connect(self._failed_to_start)
        self.process, self._out, self._err, self._answer, self._cancelled, self.result = p, b"", b"", None, False, None
        self._last_err = ""
        dialog.set_running(True)
        self.w.report("model", f"training a model from {len(bundles)} bundle(s) into {out.name}")
        p.start()
        return True

    def _lines(self, buf: bytes, more: bytes) -> tuple[list[str], bytes]:
        buf += more
        *done, rest = buf.split(b"\n")
        return [d.decode("utf-8", "replace").rstrip("\r") for d in done], rest

    def _read_out(self) -> None:
        if self.process is None:
            return
        lines, self._out = self._lines(self._out, bytes(self.process.readAllStandardOutput()))
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            if "step" in msg and self.dialog is not None:
                self.dialog.set_progress(int(msg["step"]), int(msg["steps"]), float(msg["loss"]), float(msg["eta_s"]))
            elif "step" not in msg:
                self._answer = msg

    def _read_err(self) -> None:
        if self.process is None:
            return
        lines, self._err = self._lines(self._err, bytes(self.process.readAllStandardError()))
        for line in lines:
            if line.strip():
                self._last_err = line.strip()
                if self.dialog is not None:
                    self.dialog.add_log(line)

    def _finished(self, code: int, status: QtCore.QProcess.ExitStatus) -> None:
        self._read_out()
        self._read_err()
        answer = self._answer or {}
        p, self.process = self.process, None
        if p is not None:
            p.deleteLater()
        if self.spec_path is not None:
            self.spec_path.unlink(missing_ok=True)
        if "done" in answer:
            self.result = r = answer["done"]
            f1 = (f"; held-out {r['measured_on']} F1 {r['f1']:.3f} (its parent {r['parent_f1']:.3f})"
                  if r.get("f1") is not None and r.get("parent_f1") is not None else "; no held-out frames to measure on")
            reg = (f", in the registry as challenger {r['registered']}: run Model challenge before promoting it"
                   if r.get("registered") else "")
            message = f"Trained {Path(r['out']).name} in {r['total_s']:.0f} s ({r['stopped']}){f1}{reg}."
            self._done(True, message)
            models = getattr(self.w, "models", None)
            if models is not None:
                models.check()
        elif "interrupted" in answer or self._cancelled:
            self._done(False, "Cancelled: nothing was written.")
        elif "error" in answer:
            self._done(False, str(answer["error"])[0].upper() + str(answer["error"])[1:] + ".")
        else:
            last = self._err.decode("utf-8", "replace").strip() or self._last_err or "no message"
            self._done(False, f"The training stopped unexpectedly (exit {code}): {last.splitlines()[-1]}")

    def _failed_to_start(self, error: QtCore.QProcess.ProcessError) -> None:
        if error == QtCore.QProcess.ProcessError.FailedToStart and self.process is not None:
            p, self.process = self.process, None
            p.deleteLater()
            if self.spec_path is not None:
                self.spec_path.unlink(missing_ok=True)
            self._done(False, f"The training could not start: {p.errorString()}")

    def _done(self, ok: bool, message: str) -> None:
        self.w.report("model" if ok else "error", message)
        if self.dialog is not None:
            self.dialog.finish(ok, message)

    def cancel(self) -> None:
        """Stop the run: it writes nothing (the child handles the terminate as Ctrl+C)."""
        if self.process is None:
            return
        self._cancelled = True
        if self.dialog is not None:
            self.dialog.status.setText("Cancelling…")
        self._stop(self.process)
        QtCore.QTimer.singleShot(30000, lambda p=self.process: self._kill(p))

    @staticmethod
    def _stop(p: QtCore.QProcess) -> None:
        if sys.platform == "win32":
            p.kill()  # a console child on Windows does not hear terminate(); it has written nothing yet or is done
        else:
            p.terminate()  # SIGTERM: the child stops as at Ctrl+C, writing nothing

    def _kill(self, p: QtCore.QProcess | None) -> None:
        if p is not None and p is self.process and p.state() != QtCore.QProcess.ProcessState.NotRunning:
            p.kill()

    @property
    def busy(self) -> bool:
        return self.process is not None

    def may_close(self) -> bool:
        """Asked before the window closes: True when no training runs or the user agrees to stop it."""
        if self.process is None:
            return True
        answer = QtWidgets.QMessageBox.question(
            self.w, "A model is training",
            "A training run is still going. Stop it and close the window? Nothing of it will be written.",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def shutdown(self) -> None:
        """The window closes: a running training stops, writing nothing."""
        p = self.process
        if p is None:
            return
        self._cancelled = True
        self._stop(p)
        if not p.waitForFinished(30000):
            p.kill()
            p.waitForFinished(3000)


def install(window: Any) -> TrainingController:
    """Add "Train a model from bundles…" to the Tools menu and the Models dock."""
    c = TrainingController(window)
    action = actions.action(window, "Train a model from bundles…", SHORTCUT, lambda *_: c.open(),
                            tip="Fine-tune the champion on exported feedback bundles; the result joins the registry "
                                "as a challenger")
    action.setObjectName("trainModelAction")
    action.setProperty("permission", "models")
    window.tools_menu.addAction(action)
    window.training = c
    window.act_train_model = action
    return c
