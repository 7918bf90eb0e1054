"""What the feature controllers may use of the main window: the station, the task runner and a few views."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from PySide6 import QtWidgets

from app.gui.tasks import TaskRunner
from engine.runtime.station import Station


class StationWindow(Protocol):
    """The main window as a feature controller sees it (``app.gui.window.MainWindow`` is one)."""

    station: Station  # the model: line, model choice, stores, review session, who is signed in
    tasks: TaskRunner  # the one way back to the GUI thread
    config: dict[str, Any]
    data_dir: Path
    tools_menu: QtWidgets.QMenu  # features add their actions here
    auth: Any  # app.gui.auth.AuthController, or None on a station without sign-in
    review: Any  # widgets.review_panel.ReviewPanel

    def report(self, kind: str, message: str, when: float | None = None) -> None:
        """One line in the event log (and the status bar for errors)."""

    def open_source(self, uri: str) -> bool:
        """Watch ``uri``; False (and said) when it cannot be used."""

    def stop(self) -> None:
        """Stop the line and release the source."""

    def isVisible(self) -> bool:  # noqa: N802 (Qt naming)
        ...
