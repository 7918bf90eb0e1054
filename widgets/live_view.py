"""The live camera view: the newest frame with detection and ground-truth overlays."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.core.frame import Box

# One colour per defect class id, chosen to stay apart on grey metal and dark belt.
CLASS_COLOURS = ("#ff4d4d", "#ffd21f", "#3ec1ff", "#b36bff", "#5cff7a", "#ff8a3d")
TRUTH_COLOUR = "#ffffff"
STATE_COLOURS = {"confirm": "#43a047", "reject": "#9e9e9e", "reclass": "#43a047", "saving": "#ffffff",
                 "missed": "#00e5ff", "unsure": "#ffb300"}
# What each decision looks like in its label: confirmed ✔, rejected ✘ (and the box crossed out), relabelled →.
STATE_SIGNS = {"confirm": "✔ ", "reject": "✘ ", "reclass": "✔ ", "saving": "… ", "missed": "+ "}


def class_colour(class_id: int) -> QtGui.QColor:
    return QtGui.QColor(CLASS_COLOURS[class_id % len(CLASS_COLOURS)])


@dataclass(frozen=True)
class Marks:
    """The decisions on the frame under review, drawn until the frame is left: ``states`` (detection index ->
    confirm, reject, reclass or saving), ``relabels`` (index -> the new class), ``missed`` (boxes drawn around
    defects the model missed: ``((x0, y0, x1, y1), class, state)``) and ``unsure`` (the frame is flagged:
    ``"saving"`` or ``"unsure"``, else ``None``)."""

    states: dict[int, str] = field(default_factory=dict)
    relabels: dict[int, str] = field(default_factory=dict)
    missed: tuple[tuple[tuple, str, str], ...] = ()
    unsure: str | None = None


@dataclass(frozen=True)
class Overlay:
    """One box to draw: where, in which colour and line, crossed out or not, and its label."""

    x0: float
    y0: float
    x1: float
    y1: float
    colour: str
    width: float = 2.5
    dashed: bool = False
    crossed: bool = False
    text: str = ""
    kind: str = "detection"


def place_labels(anchors: Sequence[tuple[float, float, float, float]], sizes: Sequence[tuple[float, float]],
                 bounds: tuple[float, float] | None = None) -> list[tuple[float, float]]:
    """Top-left corners for labels of the boxes ``anchors`` (x0, y0, x1, y1) with ``sizes`` (w, h), none on top
    of another: each tries above its box, below it, inside its top; failing all three it moves down from above
    its box until it overlaps no label placed before it (greedy, in the order given)."""
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float]] = []

    def free(x: float, y: float, w: float, h: float) -> bool:
        return all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in placed)

    def inside(x: float, y: float, w: float, h: float) -> bool:
        return bounds is None or (y >= 0 and y + h <= bounds[1])

    for (x0, y0, x1, y1), (w, h) in zip(anchors, sizes):
        if bounds is not None:
            x0 = max(0.0, min(x0, bounds[0] - w))
        tries = [(x0, y0 - h), (x0, y1), (x0, y0)]
        spot = next(((x, y) for x, y in tries if inside(x, y, w, h) and free(x, y, w, h)), None)
        if spot is None:
            x, y = x0, max(0.0, y0 - h) if bounds is not None else y0 - h
            for _ in range(400):
                if free(x, y, w, h):
                    break
                y += h / 2
            spot = (x, y)
        placed.append((spot[0], spot[1], w, h))
        out.append(spot)
    return out


class _BoxPool:
    """Rectangle, cross and label items reused frame after frame, never recreated per frame."""

    def __init__(self, view: pg.ViewBox, labelled: bool) -> None:
        self.view = view
        self.labelled = labelled
        self.rects: list[QtWidgets.QGraphicsRectItem] = []
        self.crosses: list[QtWidgets.QGraphicsPathItem] = []
        self.labels: list[pg.TextItem] = []
        self.shown: list[Overlay] = []
        self.visible = 0

    def show(self, overlays: Sequence[Overlay]) -> None:
        while len(self.rects) < len(overlays):
            rect = QtWidgets.QGraphicsRectItem()
            rect.setZValue(10)
            self.view.addItem(rect)
            self.rects.append(rect)
            cross = QtWidgets.QGraphicsPathItem()
            cross.setZValue(10)
            self.view.addItem(cross)
            self.crosses.append(cross)
            if self.labelled:
                label = pg.TextItem(anchor=(0, 0))
                label.setZValue(11)
                label.fill = pg.mkBrush(0, 0, 0, 170)
                self.view.addItem(label)
                self.labels.append(label)
        for i, o in enumerate(overlays):
            colour = QtGui.QColor(o.colour)
            pen = QtGui.QPen(colour, o.width)
            pen.setCosmetic(True)
            if o.dashed:
                pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            r = QtCore.QRectF(o.x0, o.y0, max(1.0, o.x1 - o.x0), max(1.0, o.y1 - o.y0))
            rect = self.rects[i]
            rect.setPen(pen)
            rect.setRect(r)
            rect.setVisible(True)
            cross = self.crosses[i]
            if o.crossed:
                path = QtGui.QPainterPath(r.topLeft())
                path.lineTo(r.bottomRight())
                path.moveTo(r.topRight())
                path.lineTo(r.bottomLeft())
                cross.setPath(path)
                solid = QtGui.QPen(colour, 2.0)
                solid.setCosmetic(True)
                cross.setPen(solid)
            cross.setVisible(o.crossed)
            if self.labelled:
                label = self.labels[i]
                label.setText(o.text, color=colour)
                label.setVisible(bool(o.text))
        for i in range(len(overlays), self.visible):
            self.rects[i].setVisible(False)
            self.crosses[i].setVisible(False)
            if self.labelled:
                self.labels[i].setVisible(False)
        self.shown = list(overlays)
        self.visible = len(overlays)


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
        self._detections = _BoxPool(self.view, labelled=True)
        self._missed = _BoxPool(self.view, labelled=True)
        self._truth = _BoxPool(self.view, labelled=False)
        self._selected: int | None = None
        self.marks = Marks()
        self._unsure = pg.TextItem("", anchor=(0, 0))
        self._unsure.setZValue(12)
        self._unsure.fill = pg.mkBrush(0, 0, 0, 190)
        self.view.addItem(self._unsure)
        self._unsure_frame = QtWidgets.QGraphicsRectItem()
        self._unsure_frame.setZValue(9)
        self.view.addItem(self._unsure_frame)
        self._unsure.setVisible(False)
        self._unsure_frame.setVisible(False)
        self.view.sigResized.connect(self._place_labels)
        self._shape: tuple[int, ...] | None = None
        self._placeholder = pg.TextItem("No frame yet", color="#9aa0a6", anchor=(0.5, 0.5))
        self.view.addItem(self._placeholder)
        self.frames_shown = 0
        self._captured: tuple[float, int | None] | None = None
        self.frames_painted = 0
        # one entry per live frame painted: (its sequence number, ms from leaving the source to the screen)
        self.paint_log: deque[tuple[int | None, float]] = deque(maxlen=100000)
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
                   marks: Marks | None = None, frame_size: tuple[int, int] | None = None,
                   captured: float | None = None, sequence: int | None = None) -> None:
        """Draw one frame (HxWx3 uint8, RGB) with its overlays. Levels are fixed: no per-frame auto-levels.

        ``selected`` highlights one detection; ``marks`` (or just ``states``) draws the decisions made on it.
        ``frame_size`` (width, height): the frame's own size when ``rgb`` is a shrunk copy of it; the picture is
        stretched over it, so boxes stay in frame pixels. ``captured`` (``time.monotonic()`` when the frame left
        the source): the next paint records the frame-to-screen latency against the frame's ``sequence``.
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
        self._captured = None if captured is None else (captured, sequence)
        self._boxes = detections
        self._truth.show([Overlay(b.x0, b.y0, b.x1, b.y1, TRUTH_COLOUR, 1.5, dashed=True, kind="truth")
                          for b in truth])
        self.restyle(selected, states or {}, marks)
        self.frames_shown += 1

    def view_pixels(self) -> tuple[int, int]:
        """The size the picture is drawn at, in device pixels (at least 320x256): larger frames need not come."""
        r = self.view.sceneBoundingRect()
        dpr = self.devicePixelRatioF()
        return max(320, int(r.width() * dpr)), max(256, int(r.height() * dpr))

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:
        super().paintEvent(ev)
        if self._captured is not None:
            t, seq = self._captured
            self.paint_log.append((seq, (time.monotonic() - t) * 1000.0))
            self.frames_painted += 1
            self._captured = None


    def restyle(self, selected: int | None, states: dict[int, str], marks: Marks | None = None) -> None:
        """Redraw the current detections with the selection and the decisions on them (a frame under review)."""
        self._selected = selected
        self.marks = marks if marks is not None else Marks(states=dict(states))
        m = self.marks
        overlays = []
        for i, b in enumerate(self._boxes):
            state = m.states.get(i)
            colour = STATE_COLOURS.get(state or "", class_colour(b.class_id).name())
            text = b.class_name if b.score is None else f"{b.class_name} {b.score:.2f}"
            if state == "reclass" and i in m.relabels:
                text = f"{b.class_name} → {m.relabels[i]}"
            text = STATE_SIGNS.get(state or "", "") + text
            overlays.append(Overlay(b.x0, b.y0, b.x1, b.y1, colour, 5.0 if i == selected else 2.5,
                                    dashed=state == "reject", crossed=state == "reject", text=text,
                                    kind=state or "detection"))
        self._detections.show(overlays)
        self._missed.show([Overlay(*box, STATE_COLOURS["missed" if state == "missed" else "saving"], 3.0,
                                   text=f"{STATE_SIGNS['missed']}{cls} (missed)", kind=state)
                           for box, cls, state in m.missed])
        self._show_unsure(m.unsure)
        self._place_labels()

    def _show_unsure(self, state: str | None) -> None:
        on = state is not None and self._shape is not None
        self._unsure.setVisible(on)
        self._unsure_frame.setVisible(on)
        if not on:
            return
        h, w = self._shape[:2]
        colour = QtGui.QColor(STATE_COLOURS["unsure" if state == "unsure" else "saving"])
        self._unsure.setText("? UNSURE — flagged for an engineer" + ("" if state == "unsure" else " …"), color=colour)
        self._unsure.setPos(0, 0)
        pen = QtGui.QPen(colour, 6.0)
        pen.setCosmetic(True)
        pen.setStyle(QtCore.Qt.PenStyle.DashLine)
        self._unsure_frame.setPen(pen)
        self._unsure_frame.setRect(QtCore.QRectF(0, 0, w, h))

    def _place_labels(self, *_: object) -> None:
        """Put the labels where none covers another (see :func:`place_labels`), at the view's current zoom."""
        shown = [(pool.labels[k], o) for pool in (self._detections, self._missed) for k, o in enumerate(pool.shown)]
        if not shown:
            return
        px = self.view.viewPixelSize()
        sx, sy = (abs(px[0]) or 1.0), (abs(px[1]) or 1.0)
        anchors = [(o.x0, o.y0, o.x1, o.y1) for _, o in shown]
        sizes = [(label.textItem.boundingRect().width() * sx, label.textItem.boundingRect().height() * sy)
                 for label, _ in shown]
        bounds = (float(self._shape[1]), float(self._shape[0])) if self._shape is not None else None
        for (label, _), (x, y) in zip(shown, place_labels(anchors, sizes, bounds)):
            label.setPos(x, y)

    def label_rects(self) -> list[QtCore.QRectF]:
        """Where the visible labels are, in frame pixels (for checking that none covers another)."""
        px = self.view.viewPixelSize()
        out = []
        for pool in (self._detections, self._missed):
            for label in pool.labels[:pool.visible]:
                if label.isVisible():
                    r = label.textItem.boundingRect()
                    out.append(QtCore.QRectF(label.pos().x(), label.pos().y(), r.width() * abs(px[0]),
                                             r.height() * abs(px[1])))
        return out

    def drawn_marks(self) -> list[tuple[str, str]]:
        """What the overlays say, as (kind, label): a detection's decision, a missed box, the unsure flag."""
        out = [(o.kind, o.text) for o in self._detections.shown + self._missed.shown]
        if self._unsure.isVisible():
            out.append(("unsure", self._unsure.textItem.toPlainText()))
        return out

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
