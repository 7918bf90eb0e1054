"""The live camera view: the newest frame with detection and ground-truth overlays."""

from __future__ import annotations

import time
from collections import deque
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.core.frame import Box

# One colour per defect class id, chosen to stay apart on grey metal and dark belt.
CLASS_COLOURS = ("#ff4d4d", "#ffd21f", "#3ec1ff", "#b36bff", "#5cff7a", "#ff8a3d")
TRUTH_COLOUR = "#ffffff"
STATE_COLOURS = {"confirm": "#43a047", "reject": "#9e9e9e", "reclass": "#43a047", "saving": "#ffffff"}


def class_colour(class_id: int) -> QtGui.QColor:
    return QtGui.QColor(CLASS_COLOURS[class_id % len(CLASS_COLOURS)])


class _BoxPool:
    """Rectangle and label items reused frame after frame, never recreated per frame."""

    def __init__(self, view: pg.ViewBox, dashed: bool, labelled: bool) -> None:
        self.view = view
        self.dashed = dashed
        self.labelled = labelled
        self.rects: list[QtWidgets.QGraphicsRectItem] = []
        self.labels: list[pg.TextItem] = []
        self.visible = 0

    def show(self, boxes: Sequence[Box], selected: int | None = None, states: dict[int, str] | None = None) -> None:
        while len(self.rects) < len(boxes):
            rect = QtWidgets.QGraphicsRectItem()
            rect.setZValue(10)
            self.view.addItem(rect)
            self.rects.append(rect)
            if self.labelled:
                label = pg.TextItem(anchor=(0, 1))
                label.setZValue(11)
                self.view.addItem(label)
                self.labels.append(label)
        for i, box in enumerate(boxes):
            colour = QtGui.QColor(TRUTH_COLOUR) if self.dashed else class_colour(box.class_id)
            state = (states or {}).get(i)
            if state in STATE_COLOURS:
                colour = QtGui.QColor(STATE_COLOURS[state])
            pen = QtGui.QPen(colour, 1.5 if self.dashed else (5.0 if i == selected else 2.5))
            pen.setCosmetic(True)
            if self.dashed or state == "reject":
                pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            rect = self.rects[i]
            rect.setPen(pen)
            rect.setRect(QtCore.QRectF(box.x0, box.y0, max(1.0, box.width), max(1.0, box.height)))
            rect.setVisible(True)
            if self.labelled:
                label = self.labels[i]
                text = box.class_name if box.score is None else f"{box.class_name} {box.score:.2f}"
                if state:
                    text += f"  [{state}]"
                label.setText(text, color=colour)
                label.fill = pg.mkBrush(0, 0, 0, 150)
                label.setPos(box.x0, box.y0)
                label.setVisible(True)
        for i in range(len(boxes), self.visible):
            self.rects[i].setVisible(False)
            if self.labelled:
                self.labels[i].setVisible(False)
        self.visible = len(boxes)


class LiveView(pg.GraphicsLayoutWidget):
    """Shows RGB frames as they come; draws the boxes it is given. Holds no state of the line."""

    clicked = QtCore.Signal(float, float)  # a click on the image, in frame pixels
    box_clicked = QtCore.Signal(int)  # a click on a detection's box
    box_drawn = QtCore.Signal(float, float, float, float)  # a box dragged out in draw mode, frame pixels

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveView")
        self.setBackground("#202124")
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self._detections = _BoxPool(self.view, dashed=False, labelled=True)
        self._truth = _BoxPool(self.view, dashed=True, labelled=False)
        self._shape: tuple[int, ...] | None = None
        self._placeholder = pg.TextItem("No frame yet", color="#9aa0a6", anchor=(0.5, 0.5))
        self.view.addItem(self._placeholder)
        self.frames_shown = 0
        self._captured: float | None = None
        self.frames_painted = 0
        self.paint_latencies_ms: deque[float] = deque(maxlen=100000)  # frame left the source -> painted
        self._boxes: Sequence[Box] = ()
        self.draw_mode = False
        self._drag_from: QtCore.QPointF | None = None
        self._rubber = QtWidgets.QGraphicsRectItem()
        pen = QtGui.QPen(QtGui.QColor("#00e5ff"), 2.0)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(20)
        self._rubber.setVisible(False)
        self.view.addItem(self._rubber)

    def show_frame(self, rgb: np.ndarray, detections: Sequence[Box] = (), truth: Sequence[Box] = (),
                   selected: int | None = None, states: dict[int, str] | None = None,
                   frame_size: tuple[int, int] | None = None, captured: float | None = None) -> None:
        """Draw one frame (HxWx3 uint8, RGB) with its overlays. Levels are fixed: no per-frame auto-levels.

        ``selected`` highlights one detection; ``states`` marks decided ones (confirm, reject, saving...).
        ``frame_size`` (width, height): the frame's own size when ``rgb`` is a shrunk copy of it; the picture is
        stretched over it, so boxes stay in frame pixels. ``captured`` (``time.monotonic()`` when the frame left
        the source): the next paint records the frame-to-screen latency.
        """
        h, w = rgb.shape[:2]
        fw, fh = frame_size or (w, h)
        self.image.setImage(rgb, autoLevels=False, levels=None if rgb.dtype == np.uint8 else (0, 255))
        self.image.setRect(QtCore.QRectF(0, 0, fw, fh))
        shape = (fh, fw, *rgb.shape[2:])
        if shape != self._shape:
            self._shape = shape
            self._placeholder.setVisible(False)
            self.view.autoRange(padding=0.0)
        self._captured = captured
        self._boxes = detections
        self._detections.show(detections, selected, states)
        self._truth.show(truth)
        self.frames_shown += 1

    def view_pixels(self) -> tuple[int, int]:
        """The size the picture is drawn at, in device pixels (at least 320x256): larger frames need not come."""
        r = self.view.sceneBoundingRect()
        dpr = self.devicePixelRatioF()
        return max(320, int(r.width() * dpr)), max(256, int(r.height() * dpr))

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:
        super().paintEvent(ev)
        if self._captured is not None:
            self.paint_latencies_ms.append((time.monotonic() - self._captured) * 1000.0)
            self.frames_painted += 1
            self._captured = None

    def restyle(self, selected: int | None, states: dict[int, str]) -> None:
        """Redraw the current detections' selection and decided states (a frozen frame under review)."""
        self._detections.show(self._boxes, selected, states)

    def set_draw_mode(self, on: bool) -> None:
        self.draw_mode = on
        self.setCursor(QtCore.Qt.CursorShape.CrossCursor if on else QtCore.Qt.CursorShape.ArrowCursor)

    def _to_frame(self, ev: QtGui.QMouseEvent) -> QtCore.QPointF:
        return self.view.mapSceneToView(self.mapToScene(ev.position().toPoint()))

    def box_at(self, x: float, y: float) -> int | None:
        """The smallest detection box containing the point (a click on nested boxes means the inner one)."""
        hits = [(b.area, i) for i, b in enumerate(self._boxes) if b.x0 - 3 <= x <= b.x1 + 3 and b.y0 - 3 <= y <= b.y1 + 3]
        return min(hits)[1] if hits else None

    def show_message(self, text: str) -> None:
        """A message over the view (no source, camera lost); the last frame stays underneath."""
        self._placeholder.setText(text)
        self._placeholder.setVisible(bool(text))
        if self._shape is not None:
            h, w = self._shape[:2]
            self._placeholder.setPos(w / 2, h / 2)

    @property
    def overlay_counts(self) -> tuple[int, int]:
        """How many detection and ground-truth boxes are on screen."""
        return self._detections.visible, self._truth.visible

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        p = self._to_frame(ev)
        if self.draw_mode and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self._drag_from = p
            self._rubber.setRect(QtCore.QRectF(p, p))
            self._rubber.setVisible(True)
            ev.accept()
            return
        self.clicked.emit(float(p.x()), float(p.y()))
        hit = self.box_at(p.x(), p.y())
        if hit is not None:
            self.box_clicked.emit(hit)
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        if self._drag_from is not None:
            self._rubber.setRect(QtCore.QRectF(self._drag_from, self._to_frame(ev)).normalized())
            ev.accept()
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        if self._drag_from is not None:
            r = QtCore.QRectF(self._drag_from, self._to_frame(ev)).normalized()
            self._drag_from = None
            self._rubber.setVisible(False)
            if r.width() >= 2 and r.height() >= 2:
                self.box_drawn.emit(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))
            ev.accept()
            return
        super().mouseReleaseEvent(ev)
