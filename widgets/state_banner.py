"""What the line is doing, in large letters over the image, and the shift's counts under it.

The banner says LIVE, PAUSED, FROZEN or REVIEWING frame N, and ALARM with what is wrong, in a colour that can be
read from across the line. The shell decides the state; the banner only shows it.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

# kind -> (background, text colour)
BANNER_COLOURS = {"live": ("#1b5e20", "#ffffff"), "paused": ("#e65100", "#ffffff"),
                  "frozen": ("#0d47a1", "#ffffff"), "reviewing": ("#0d47a1", "#ffffff"),
                  "alarm": ("#b71c1c", "#ffffff"), "stopped": ("#424242", "#eeeeee")}
BANNER_HEIGHT = 52


class StateBanner(QtWidgets.QLabel):
    """One line in large letters; :meth:`set_state` changes it only when it changes (it is called per tick)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stateBanner")
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setMinimumHeight(BANNER_HEIGHT)
        self.setWordWrap(True)  # a long alarm takes a second line rather than being cut off
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Minimum)
        self.kind = ""
        self.set_state("stopped", "STOPPED")

    def set_state(self, kind: str, text: str) -> None:
        if kind == self.kind and text == self.text():
            return
        if kind != self.kind:
            bg, fg = BANNER_COLOURS.get(kind, BANNER_COLOURS["stopped"])
            self.setStyleSheet(f"QLabel#stateBanner {{ background:{bg}; color:{fg}; font-size:24px; "
                               "font-weight:bold; padding:4px 12px; border-radius:4px; }")
        self.kind = kind
        self.setText(text)


class ShiftCounts(QtWidgets.QWidget):
    """This shift's frames, frames with a defect found, decisions confirmed and rejected, and the share of frames
    with nothing found, one figure each. Frames, not parts: a part crosses several frames and the station does not
    follow parts from frame to frame, so a yield of parts is not claimed."""

    NAMES = (("parts", "Frames"), ("defects", "With a defect"), ("confirmed", "Confirmed"),
             ("rejected", "Rejected"), ("yield", "Clear frames"))
    SHORT = (("parts", "Frames"), ("defects", "Defect"), ("confirmed", "OK"), ("rejected", "Rej."), ("yield", "Clear"))
    COMPACT_BELOW = 560  # px: narrower than this, short captions

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shiftCounts")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        self.figures: dict[str, QtWidgets.QLabel] = {}
        self.captions: dict[str, QtWidgets.QLabel] = {}
        self.compact = False
        self._gaps: list[QtWidgets.QSpacerItem] = []
        for key, name in self.NAMES:
            caption = QtWidgets.QLabel(name)
            caption.setToolTip(name)
            self.captions[key] = caption
            caption.setStyleSheet("color:#9aa0a6;")
            figure = QtWidgets.QLabel("0")
            figure.setObjectName(f"count_{key}")
            figure.setStyleSheet("font-size:20px; font-weight:bold;")
            lay.addWidget(caption)
            lay.addWidget(figure)
            gap = QtWidgets.QSpacerItem(14, 0)
            lay.addSpacerItem(gap)
            self._gaps.append(gap)
            self.figures[key] = figure
        lay.addStretch(1)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        compact = event.size().width() < self.COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            for key, name in self.SHORT if compact else self.NAMES:
                self.captions[key].setText(name)
            for gap in self._gaps:  # narrow: closer together and a size smaller, so the share stays whole
                gap.changeSize(4 if compact else 14, 0)
            for figure in self.figures.values():
                figure.setStyleSheet(f"font-size:{15 if compact else 20}px; font-weight:bold;")
            self.layout().setSpacing(3 if compact else -1)
            self.layout().invalidate()
        super().resizeEvent(event)

    def set_counts(self, parts: int, defects: int, confirmed: int, rejected: int) -> None:
        yield_text = f"{100.0 * (parts - defects) / parts:.1f} %" if parts else "—"
        for key, value in (("parts", str(parts)), ("defects", str(defects)), ("confirmed", str(confirmed)),
                           ("rejected", str(rejected)), ("yield", yield_text)):
            if self.figures[key].text() != value:
                self.figures[key].setText(value)
