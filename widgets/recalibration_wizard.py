"""The recalibration wizard a technician follows after a lens change: a live preview and a clear verdict per step.

The wizard does no measuring, storing or I/O: it talks to a *controller* (see :class:`Controller`), which
runs the procedure off the GUI thread and answers with Qt signals. Pages: reason and who; one page per
measured step (geometry, focus, exposure and colour, golden parts, domain shift), each with the live view,
the measured values, PASS / FAIL, and an override with a written reason for a failed mandatory check; and
the commit page, where the technician keeps or replaces the station reference and finishes. The finish is
blocked while a mandatory check has failed without an override.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

STATUS_STYLE = {
    "pass": ("PASS", "#1a7f37"), "warn": ("WARNING", "#b26a00"), "fail": ("FAIL", "#c62828"),
    "running": ("Measuring…", "#555555"), "pending": ("Not measured yet", "#555555"),
    "overridden": ("FAIL — overridden", "#b26a00"),
}


class Controller(Protocol):
    """What the wizard needs from the procedure. Signals (Qt) carry the results back to the GUI thread:

    ``updated(step, rgb, values, message, ready, status)``, ``step_finished(step, state)``,
    ``committed(result)``, ``failed(message)``.
    """

    updated: Any
    step_finished: Any
    committed: Any
    failed: Any

    def set_reason(self, reason: str, who: str, note: str) -> str | None: ...
    def start_step(self, step: str | None) -> None: ...
    def accept_step(self, step: str) -> None: ...
    def override(self, step: str, reason: str, who: str) -> str | None: ...
    def states(self) -> list[dict[str, Any]]: ...
    def blocking(self) -> list[str]: ...
    def commit(self, keep_reference: bool) -> None: ...
    def stop(self) -> None: ...


class Preview(QtWidgets.QLabel):
    """The live image, scaled to fit, aspect kept."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("preview")
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("background:#202020;color:#ddd")
        self.setText("Waiting for the camera…")
        self._image: QtGui.QImage | None = None
        self.frames_shown = 0

    def set_rgb(self, rgb: np.ndarray) -> None:
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        self._image = QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
        self.frames_shown += 1
        self._rescale()

    def resizeEvent(self, e: QtGui.QResizeEvent) -> None:
        super().resizeEvent(e)
        self._rescale()

    def _rescale(self) -> None:
        if self._image is not None:
            self.setPixmap(QtGui.QPixmap.fromImage(self._image).scaled(
                self.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                QtCore.Qt.TransformationMode.SmoothTransformation))


def _verdict_label() -> QtWidgets.QLabel:
    lbl = QtWidgets.QLabel()
    lbl.setObjectName("verdict")
    f = lbl.font()
    f.setPointSize(f.pointSize() + 6)
    f.setBold(True)
    lbl.setFont(f)
    return lbl


def _set_verdict(lbl: QtWidgets.QLabel, status: str) -> None:
    text, colour = STATUS_STYLE.get(status, (status.upper(), "#555"))
    lbl.setText(text)
    lbl.setStyleSheet(f"color:{colour}")
    lbl.setProperty("status", status)


# What a technician calls each measured quantity.
NAMES = {"mean_luma": "Brightness", "mean_r": "Red level", "mean_g": "Green level", "mean_b": "Blue level",
         "std_luma": "Brightness spread", "gain_r": "Red balance", "gain_b": "Blue balance",
         "cct_k": "Colour temperature", "rms_contrast": "Contrast", "focus": "Sharpness", "noise": "Noise",
         "uniformity": "Evenness of the light", "vignetting": "Darkening at the corners",
         "clip_dark": "Share of black pixels", "clip_bright": "Share of white pixels"}


def _name(key: str) -> str:
    return NAMES.get(key, key.replace("_", " ").capitalize())


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _within(key: str, row: dict[str, Any]) -> str:
    """One measured quantity against its tolerance, as a sentence."""
    name, cur = _name(key), row.get("current")
    if "ok" not in row or row.get("reference") is None:
        return f"{name}: {_num(cur)} (no reference to compare with)."
    if row["ok"]:
        return f"{name} within tolerance ({_num(cur)}, reference {_num(row['reference'])})."
    return (f"{name} outside tolerance: {_num(cur)} against {_num(row['reference'])} "
            f"(allowed {_num(row.get('low'))} to {_num(row.get('high'))}).")


def describe(step: str, values: dict[str, Any], seen: int = 0, found: int = 0) -> list[str]:
    """The measured values of a step as sentences a technician reads (``seen``, ``found``: images looked at and
    with the checkerboard found, for the geometry step)."""
    v = values
    out: list[str] = []
    if step == "geometry":
        if seen:
            out.append(f"The checkerboard was found in {found} of {seen} images.")
        elif "found" in v:
            out.append("The checkerboard is in view." if v["found"] else "The checkerboard is not in view.")
        if "views" in v:
            need = v.get("min_views")
            out.append(f"{v['views']} different views taken" + (f", at least {need} needed." if need else "."))
        if isinstance(v.get("coverage"), float):
            out.append(f"The views cover {v['coverage']:.0%} of the picture.")
    elif step == "focus":
        now = v.get("focus_settled", v.get("focus"))
        if isinstance(now, float):
            out.append(f"Sharpness now {now:.3f}; the best seen {float(v.get('peak') or 0.0):.3f}.")
        band = v.get("band")
        if band:
            ok = isinstance(now, float) and now >= band[0]
            out.append(f"{'Sharp enough' if ok else 'Not sharp enough yet'}: the reference asks {band[0]:.3f} or more.")
        else:
            out.append("No reference to compare with: turn the ring to the sharpest picture.")
    elif step == "exposure":
        for k, row in (v.get("exposure") or {}).items():
            out.append(_within(k, row))
    elif step == "golden":
        rates = v.get("hit_rate") or {}
        if "frames" in v:
            out.append(f"{v['frames']} images of the golden parts checked.")
        if rates:
            missed = v.get("missed") or []
            out.append(f"{len(rates) - len(missed)} of {len(rates)} known defects found.")
            if missed:
                out.append("Not found: " + ", ".join(missed) + ".")
        elif "frames" in v:
            out.append("No golden part with a known defect fully in view yet.")
        if "false_alarms" in v:
            n = v["false_alarms"]
            out.append(f"{n} false alarm{'' if n == 1 else 's'} ({float(v.get('false_alarms_per_frame', 0)):.2f} "
                       f"per image).")
    elif step == "domain":
        if "frames" in v:
            out.append(f"{v['frames']} fresh images measured.")
        for k, row in (v.get("metrics") or {}).items():
            out.append(_within(k, row))
        if isinstance(v.get("luma_psi"), float):
            out.append(f"Spread of brightness like the training images' (PSI {v['luma_psi']:.3f})."
                       if "luminance histogram (PSI)" not in (v.get("beyond") or [])
                       else f"Spread of brightness unlike the training images' (PSI {v['luma_psi']:.3f}).")
        if isinstance(v.get("novel_share"), float):
            out.append(f"{v['novel_share']:.0%} of the images look unlike anything the model was trained on.")
        if v.get("beyond"):
            out.append("Unlike the training images in: " + ", ".join(NAMES.get(b, b) for b in v["beyond"]) + ".")
    return out


def _values_html(step: str, values: dict[str, Any], seen: int = 0, found: int = 0) -> str:
    """The measured values as short sentences, one a line."""
    return "<br>".join(html.escape(line) for line in describe(step, values, seen, found))


class ReasonPage(QtWidgets.QWizardPage):
    def __init__(self, controller: Controller, reasons: Sequence[str], who: str) -> None:
        super().__init__()
        self.controller = controller
        self.setObjectName("page_reason")
        self.setTitle("Why is the station being recalibrated?")
        self.setSubTitle("A lens swap, a refocus, a moved camera or a firmware update changes what the camera "
                         "sees. The following steps prove the station still sees what it saw before.")
        self.preview = Preview()
        self.reason = QtWidgets.QComboBox()
        self.reason.setObjectName("reason")
        self.reason.addItems(list(reasons))
        self.who = QtWidgets.QLineEdit(who)
        self.who.setObjectName("who")
        self.note = QtWidgets.QLineEdit()
        self.note.setObjectName("note")
        self.note.setPlaceholderText("what was done (required for 'other')")
        self.error = QtWidgets.QLabel()
        self.error.setObjectName("error")
        self.error.setStyleSheet("color:#c62828")
        form = QtWidgets.QFormLayout()
        form.addRow("&Reason", self.reason)
        form.addRow("&Who", self.who)
        form.addRow("&Note", self.note)
        lay = QtWidgets.QHBoxLayout(self)
        lay.addWidget(self.preview, 3)
        side = QtWidgets.QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.error)
        side.addStretch(1)
        lay.addLayout(side, 2)

    def initializePage(self) -> None:
        self.controller.start_step(None)

    def validatePage(self) -> bool:
        err = self.controller.set_reason(self.reason.currentText(), self.who.text(), self.note.text())
        self.error.setText(err or "")
        return err is None


class StepPage(QtWidgets.QWizardPage):
    """One measured step: live view, values, message, verdict, and an override for a failed check."""

    def __init__(self, controller: Controller, step: str, title: str, instructions: str, mandatory: bool,
                 who: QtWidgets.QLineEdit) -> None:
        super().__init__()
        self.controller = controller
        self.step = step
        self.mandatory = mandatory
        self._who = who
        self.state: dict[str, Any] | None = None
        self._seen = self._found = 0  # images looked at and with the checkerboard found (geometry)
        self.setObjectName(f"page_{step}")
        self.setTitle(f"{title}{' (mandatory)' if mandatory else ''}")
        self.setSubTitle(instructions)
        self.preview = Preview()
        self.message = QtWidgets.QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.values = QtWidgets.QLabel()
        self.values.setObjectName("values")
        self.values.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.values.setWordWrap(True)
        self.verdict = _verdict_label()
        self.summary = QtWidgets.QLabel()
        self.summary.setObjectName("summary")
        self.summary.setWordWrap(True)
        self.accept_button = QtWidgets.QPushButton("&Accept and judge" if step != "geometry" else "&Solve the lens")
        self.accept_button.setObjectName("accept")
        self.accept_button.setToolTip("Stop measuring and judge the step on what has been seen (Alt+A / Alt+S)")
        self.accept_button.clicked.connect(lambda: self.controller.accept_step(self.step))
        self.again_button = QtWidgets.QPushButton("&Measure again")
        self.again_button.setObjectName("again")
        self.again_button.clicked.connect(self._again)
        self.override_reason = QtWidgets.QLineEdit()
        self.override_reason.setObjectName("overrideReason")
        self.override_reason.setPlaceholderText("why the station may go on although this check failed")
        self.override_button = QtWidgets.QPushButton("&Override")
        self.override_button.setObjectName("override")
        self.override_button.clicked.connect(self._override)
        self.override_box = QtWidgets.QGroupBox("Override the failed check (recorded with your name)")
        ob = QtWidgets.QHBoxLayout(self.override_box)
        ob.addWidget(self.override_reason, 1)
        ob.addWidget(self.override_button)
        self.override_box.setVisible(False)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.verdict)
        side.addWidget(self.message)
        side.addWidget(self.values)
        side.addWidget(self.summary)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.again_button)
        side.addLayout(buttons)
        side.addWidget(self.override_box)
        side.addStretch(1)
        lay = QtWidgets.QHBoxLayout(self)
        lay.addWidget(self.preview, 3)
        lay.addLayout(side, 2)
        _set_verdict(self.verdict, "pending")

    def initializePage(self) -> None:
        if self.state is None:
            self._again()

    def _again(self) -> None:
        self._seen = self._found = 0
        self.state = None
        self.override_box.setVisible(False)
        self.summary.setText("")
        _set_verdict(self.verdict, "running")
        self.accept_button.setEnabled(True)
        self.controller.start_step(self.step)
        self.completeChanged.emit()

    def on_update(self, rgb: np.ndarray, values: dict[str, Any], message: str, ready: bool, status: str) -> None:
        if self.state is not None:
            return
        self.preview.set_rgb(rgb)
        self.message.setText(message)
        if self.step == "geometry" and "found" in values:
            self._seen += 1
            self._found += bool(values["found"])
        self.values.setText(_values_html(self.step, values, self._seen, self._found))
        live = {"pass": "PASS (live)", "fail": "not yet in band" if self.step in ("focus", "exposure") else "FAIL (live)"}
        self.verdict.setText(live.get(status, "Measuring…") if status != "running" else "Measuring…")

    def on_finished(self, state: dict[str, Any]) -> None:
        self.state = state
        status = state["status"]
        if state.get("override"):
            status = "overridden"
        _set_verdict(self.verdict, status)
        self.summary.setText(state.get("summary", ""))
        self.accept_button.setEnabled(False)
        self.override_box.setVisible(state["status"] == "fail" and state.get("mandatory", False)
                                     and not state.get("override"))
        self.completeChanged.emit()

    def _override(self) -> None:
        err = self.controller.override(self.step, self.override_reason.text(), self._who.text())
        if err:
            self.summary.setText(err)
            return
        if self.state is not None:
            self.state = {**self.state, "override": {"reason": self.override_reason.text()}}
            self.on_finished(self.state)

    def isComplete(self) -> bool:
        return self.state is not None

    def cleanupPage(self) -> None:
        self.controller.stop()


class CommitPage(QtWidgets.QWizardPage):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.result: dict[str, Any] | None = None
        self.setObjectName("page_commit")
        self.setTitle("Commit")
        self.setSubTitle("The new lens profile, the station reference, an event on every trend chart and a "
                         "before/after report are kept in the data directory.")
        self.preview = Preview()
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setObjectName("verdicts")
        self.table.setHorizontalHeaderLabels(["step", "verdict", "what was measured"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.blocked = QtWidgets.QLabel()
        self.blocked.setObjectName("blocked")
        self.blocked.setWordWrap(True)
        self.new_reference = QtWidgets.QRadioButton("Make a &new station reference from the fresh frames")
        self.new_reference.setObjectName("newReference")
        self.keep_reference = QtWidgets.QRadioButton("&Keep the current station reference")
        self.keep_reference.setObjectName("keepReference")
        self.new_reference.setChecked(True)
        self.commit_button = QtWidgets.QPushButton("&Commit the recalibration")
        self.commit_button.setObjectName("commit")
        self.commit_button.clicked.connect(self._commit)
        self.outcome = QtWidgets.QLabel()
        self.outcome.setObjectName("outcome")
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.table, 1)
        side.addWidget(self.blocked)
        side.addWidget(self.new_reference)
        side.addWidget(self.keep_reference)
        side.addWidget(self.commit_button)
        side.addWidget(self.outcome)
        lay = QtWidgets.QHBoxLayout(self)
        lay.addWidget(self.preview, 2)
        lay.addLayout(side, 3)

    def initializePage(self) -> None:
        self.controller.start_step(None)
        self.refresh()

    def refresh(self) -> None:
        states = self.controller.states()
        self.table.setRowCount(len(states))
        for i, st in enumerate(states):
            status = "overridden" if st.get("override") else st["status"]
            text, colour = STATUS_STYLE.get(status, (status, "#555"))
            items = [QtWidgets.QTableWidgetItem(st["title"] + (" *" if st["mandatory"] else "")),
                     QtWidgets.QTableWidgetItem(text), QtWidgets.QTableWidgetItem(st.get("summary", ""))]
            items[1].setForeground(QtGui.QColor(colour))
            for j, it in enumerate(items):
                self.table.setItem(i, j, it)
        blocking = self.controller.blocking()
        if blocking:
            self.blocked.setText("Cannot finish: " + ", ".join(blocking) + " failed or did not run. Go back and "
                                 "measure again, or override with a written reason. (* mandatory)")
            self.blocked.setStyleSheet("color:#c62828")
        else:
            self.blocked.setText("Every mandatory check passed or was overridden. (* mandatory)")
            self.blocked.setStyleSheet("color:#1a7f37")
        self.commit_button.setEnabled(not blocking and self.result is None)

    WAITING = "Waiting for a PIN to sign the recalibration…"
    WRITING = "Writing the lens profile, the reference and the report…"

    def _commit(self) -> None:
        self.commit_button.setEnabled(False)
        self.outcome.setStyleSheet("")
        self.outcome.setText(self.WAITING)  # the controller asks for the PIN before anything is written
        self.controller.commit(self.keep_reference.isChecked())
        if self.result is None and self.outcome.text() == self.WAITING:  # signed (a refusal says so at once)
            self.outcome.setText(self.WRITING)

    def on_committed(self, result: dict[str, Any]) -> None:
        self.result = result
        self.outcome.setText(f"Done. Report: {result.get('report')}")
        self.outcome.setStyleSheet("color:#1a7f37")
        self.completeChanged.emit()

    def on_failed(self, message: str) -> None:
        self.outcome.setText(message)
        self.outcome.setStyleSheet("color:#c62828")
        self.refresh()

    def isComplete(self) -> bool:
        return self.result is not None


class RecalibrationWizard(QtWidgets.QWizard):
    """``steps``: (name, title, instructions, mandatory) for each measured step, in order."""

    def __init__(self, controller: Controller, reasons: Sequence[str],
                 steps: Sequence[tuple[str, str, str, bool]], who: str = "",
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recalibrationWizard")
        self.setWindowTitle("Recalibrate after a lens change")
        self.setWizardStyle(QtWidgets.QWizard.WizardStyle.ClassicStyle)
        self.resize(1100, 640)
        self.controller = controller
        self.reason_page = ReasonPage(controller, reasons, who)
        self.addPage(self.reason_page)
        self.step_pages: dict[str, StepPage] = {}
        for name, title, instructions, mandatory in steps:
            page = StepPage(controller, name, title, instructions, mandatory, self.reason_page.who)
            self.step_pages[name] = page
            self.addPage(page)
        self.commit_page = CommitPage(controller)
        self.addPage(self.commit_page)
        controller.updated.connect(self._on_update)
        controller.step_finished.connect(self._on_finished)
        controller.committed.connect(self.commit_page.on_committed)
        controller.failed.connect(self._on_failed)
        self.rejected.connect(controller.stop)

    def _on_update(self, step: str, rgb: Any, values: dict, message: str, ready: bool, status: str) -> None:
        page = self.currentPage()
        if isinstance(page, StepPage) and page.step == step:
            page.on_update(rgb, values, message, ready, status)
        elif step == "" and isinstance(page, (ReasonPage, CommitPage)):
            page.preview.set_rgb(rgb)

    def _on_finished(self, step: str, state: dict) -> None:
        page = self.step_pages.get(step)
        if page is not None:
            page.on_finished(state)

    def _on_failed(self, message: str) -> None:
        page = self.currentPage()
        if isinstance(page, CommitPage):
            page.on_failed(message)
        elif isinstance(page, StepPage):
            page.summary.setText(message)
        elif isinstance(page, ReasonPage):
            page.error.setText(message)
