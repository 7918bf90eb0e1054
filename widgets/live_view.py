"""The live camera view: the newest frame with detection and ground-truth overlays."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.frame import Box

# One colour per defect class id, chosen to stay apart on grey metal and dark belt.
CLASS_COLOURS = ("#ff4d4d", "#ffd21f", "#3ec1ff", "#b36bff", "#5cff7a", "#ff8a3d")
TRUTH_COLOUR = "#ffffff"


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

    def show(self, boxes: Sequence[Box]) -> None:
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
            pen = QtGui.QPen(colour, 1.5 if self.dashed else 2.5)
            pen.setCosmetic(True)
            if self.dashed:
                pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            rect = self.rects[i]
            rect.setPen(pen)
            rect.setRect(QtCore.QRectF(box.x0, box.y0, max(1.0, box.width), max(1.0, box.height)))
            rect.setVisible(True)
            if self.labelled:
                label = self.labels[i]
                text = box.class_name if box.score is None else f"{box.class_name} {box.score:.2f}"
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

    def show_frame(self, rgb: np.ndarray, detections: Sequence[Box] = (), truth: Sequence[Box] = ()) -> None:
        """Draw one frame (HxWx3 uint8, RGB) with its overlays. Levels are fixed: no per-frame auto-levels."""
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        if rgb.shape != self._shape:
            self._shape = rgb.shape
            self._placeholder.setVisible(False)
            self.view.autoRange(padding=0.0)
        self._detections.show(detections)
        self._truth.show(truth)
        self.frames_shown += 1

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
        p = self.view.mapSceneToView(self.mapToScene(ev.position().toPoint()))
        self.clicked.emit(float(p.x()), float(p.y()))
        super().mousePressEvent(ev)
