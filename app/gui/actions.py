"""Every action of the main window in one place, with its shortcut, and the one function that enables them."""

from __future__ import annotations

from typing import Any, Callable

from PySide6 import QtGui, QtWidgets


def action(window: QtWidgets.QMainWindow, text: str, shortcut: str | None, slot: Callable[..., Any],
           icon: QtWidgets.QStyle.StandardPixmap | None = None, tip: str = "",
           checkable: bool = False) -> QtGui.QAction:
    a = QtGui.QAction(text, window)
    if shortcut is not None:
        a.setShortcut(QtGui.QKeySequence(shortcut))
    if icon is not None:
        a.setIcon(window.style().standardIcon(icon))
    a.setCheckable(checkable)
    a.setToolTip(f"{tip or text} ({a.shortcut().toString()})" if shortcut is not None else (tip or text))
    a.triggered.connect(slot)
    window.addAction(a)
    return a


def make_actions(w: Any) -> None:
    """The line's, the view's and the review's actions, as ``w.act_*``."""
    SP = QtWidgets.QStyle.StandardPixmap
    review = w.station.review
    w.act_start = action(w, "Start", "F5", w.start, SP.SP_MediaPlay, "Start watching the source")
    w.act_pause = action(w, "Pause", "Space", w.toggle_pause, SP.SP_MediaPause, "Pause or resume the live view",
                         checkable=True)
    w.act_stop = action(w, "Stop", "Shift+F5", w.stop, SP.SP_MediaStop, "Stop and release the source")
    w.act_open = action(w, "Choose source", "Ctrl+O", lambda: w.chooser.combo.setFocus(), None,
                        "Type or pick a source")
    w.act_truth = action(w, "Ground truth", "G", w.toggle_truth, None,
                         "Show the simulator's true defects as dashed boxes", checkable=True)
    w.act_truth.setChecked(w.show_truth)
    w.act_full = action(w, "Full screen", "F11", w.toggle_full_screen, None)
    w.act_model = action(w, "Choose model…", "Ctrl+M", w.browse_model, None,
                         "Run a .pt2 or TorchScript model of your own")
    w.act_conf_down = action(w, "Lower confidence", "[", lambda: w.model_controls.step_confidence(-1), None)
    w.act_conf_up = action(w, "Raise confidence", "]", lambda: w.model_controls.step_confidence(1), None)
    rv = w.review_view
    w.act_freeze = action(w, "Freeze or resume", "F", rv.toggle_freeze, None)
    w.act_queue = action(w, "Next in review queue", "N", rv.next_queued, None)
    w.act_confirm = action(w, "Confirm detection", "C", lambda: review.decide("confirm"), None)
    w.act_reject = action(w, "Reject detection", "X", lambda: review.decide("reject"), None)
    w.act_unsure = action(w, "Unsure frame", "U", lambda: review.decide("unsure"), None)
    w.act_missed = action(w, "Draw missed defect", "M", w.review.missed_button.toggle, None)
    w.act_undo = action(w, "Undo last decision", "Ctrl+Z", review.undo, None)
    w.act_next_det = action(w, "Next detection", "Tab", review.select_next, None)
    w.act_classes = []
    make_class_actions(w, w.station.classes)
    w.act_quit = action(w, "Quit", "Ctrl+Q", w.close, None)


def make_class_actions(w: Any, classes: tuple[str, ...]) -> None:
    """Keys 1, 2, 3… for the classes of the model that runs."""
    for a in w.act_classes:
        w.removeAction(a)
        a.deleteLater()
    w.act_classes = [action(w, f"Class {name}", str(i + 1), lambda *_, n=name: w.review_view.class_chosen(n), None)
                     for i, name in enumerate(classes[:9])]
    for a in w.act_classes:
        a.setProperty("permission", "review")


def update_actions(w: Any) -> None:
    """Enable the line's actions for its state (the sign-in gate comes on top, in app.gui.auth)."""
    running = w.station.running
    w.act_stop.setEnabled(running)
    w.act_pause.setEnabled(running)
    w.act_start.setEnabled(not running or w.act_pause.isChecked())
