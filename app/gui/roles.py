"""Views by role: what the window shows to an operator, a technician and an engineer.

The signed-in role picks the view; View > Operator / Technician / Engineer view (Ctrl+1, Ctrl+2, Ctrl+3) lets
anyone switch. Each view's dock layout is kept in the window's settings under its own key and comes back as it
was left. A dock added later joins a view with one line, in the code that makes it::

    window.views.assign(dock, "engineer")   # shown in the engineer's view (more names: more views)

or, for a dock the window makes itself, ``self._dock(title, name, widget, area, views=("engineer",))``.

- operator: the image as large as the screen allows, the state banner, the shift's counts, the review buttons
  along one side and drift as one strip of lights (a tap opens the drift dock).
- technician: the drift cockpit (the drift dock large: tiles, trend, histogram, events) with Recalibrate on the
  toolbar, one click away.
- engineer: every dock (measurements, events, drift, review, and the engineers' docks added by features).
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

VIEWS = ("operator", "technician", "engineer")
VIEW_OF_ROLE = {"operator": "operator", "technician": "technician", "engineer": "engineer", "admin": "engineer"}
SHORTCUTS = {"operator": "Ctrl+1", "technician": "Ctrl+2", "engineer": "Ctrl+3"}
# The docks each view shows, by object name.
VIEW_DOCKS = {"operator": ["reviewDock"],
              "technician": ["driftDock", "eventsDock"],
              "engineer": ["measurementsDock", "driftDock", "eventsDock"]}
MIN_IMAGE = {"operator": (480, 380)}  # the smallest image an operator can judge a defect on (1024x768 screens)
MIN_IMAGE_OTHERS = (320, 240)
LAYOUT_VERSION = 2  # saveState's version: a layout saved by an older window is not restored


class RoleViews(QtCore.QObject):
    def __init__(self, w: Any, menu: QtWidgets.QMenu) -> None:
        super().__init__(w)
        self.w = w
        self.view = ""
        self.docks = {v: list(names) for v, names in VIEW_DOCKS.items()}
        self.group = QtGui.QActionGroup(self)
        self.actions: dict[str, QtGui.QAction] = {}
        menu.addSeparator()
        for v in VIEWS:
            a = QtGui.QAction(f"{v.capitalize()} view", w)
            a.setObjectName(f"view_{v}")
            a.setShortcut(QtGui.QKeySequence(SHORTCUTS[v]))
            a.setCheckable(True)
            a.setToolTip(f"The {v}'s layout ({SHORTCUTS[v]})")
            a.triggered.connect(lambda *_, v=v: self.use(v))
            self.group.addAction(a)
            w.addAction(a)
            menu.addAction(a)
            self.actions[v] = a
        menu.addSeparator()
        w.addToolBarBreak()  # a row of its own: the line's toolbar keeps the model and confidence in view
        self.cockpit = w.addToolBar("Cockpit")
        self.cockpit.setObjectName("cockpitToolbar")
        self.cockpit.setIconSize(QtCore.QSize(32, 32))

    def assign(self, dock: QtWidgets.QDockWidget, *views: str) -> None:
        """Show ``dock`` in ``views`` (its default place; a layout the user changed keeps theirs)."""
        for v in views:
            if dock.objectName() not in self.docks[v]:
                self.docks[v].append(dock.objectName())
        if self.view:
            dock.setVisible(self.view in views)

    def for_role(self, role: str | None) -> None:
        self.use(VIEW_OF_ROLE.get(role or "", "operator"))

    def use(self, view: str) -> None:
        """Switch to ``view``: the current view's layout is kept, the new one's restored (or laid out anew)."""
        w, settings = self.w, self.w.settings
        if view not in VIEWS:
            view = "operator"
        if self.view and self.view != view:
            settings.setValue(f"layout/{self.view}", w.saveState(LAYOUT_VERSION))
        self.view = view
        self.actions[view].setChecked(True)
        state = settings.value(f"layout/{view}")
        if state is None or not w.restoreState(state, LAYOUT_VERSION):
            self.lay_out(view)
        # The operator's review panel stays where it is: no float or close buttons for a finger to hit by mistake.
        Feature = QtWidgets.QDockWidget.DockWidgetFeature
        w.dock_review.setFeatures(Feature.NoDockWidgetFeatures if view == "operator" else
                                  Feature.DockWidgetClosable | Feature.DockWidgetMovable | Feature.DockWidgetFloatable)
        self.cockpit.setVisible(view == "technician")
        w.drift_strip.setVisible(view == "operator")  # the others have the drift dock itself
        w.live.setMinimumSize(*MIN_IMAGE.get(view, MIN_IMAGE_OTHERS))
        settings.setValue("layout/view", view)

    def save(self) -> None:
        if self.view:
            self.w.settings.setValue(f"layout/{self.view}", self.w.saveState(LAYOUT_VERSION))

    def lay_out(self, view: str) -> None:
        """The view's default layout."""
        w = self.w
        Left, Right = QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        Horizontal = QtCore.Qt.Orientation.Horizontal
        shown = set(self.docks[view])
        docks = w.findChildren(QtWidgets.QDockWidget)
        for d in docks:
            d.setFloating(False)
        w.addDockWidget(Left, w.dock_review)
        width = max(800, w.width() if w.isVisible() else w.screen().availableGeometry().width())
        if view == "operator":
            pass
        elif view == "technician":
            w.addDockWidget(Right, w.dock_drift)
            w.addDockWidget(Right, w.dock_events)
            w.splitDockWidget(w.dock_drift, w.dock_events, QtCore.Qt.Orientation.Vertical)
        else:
            w.addDockWidget(Right, w.dock_values)
            w.splitDockWidget(w.dock_values, w.dock_events, QtCore.Qt.Orientation.Vertical)
            w.tabifyDockWidget(w.dock_values, w.dock_drift)
            for d in docks:  # the engineers' docks added by features: tabbed with the measurements
                if d.objectName() in shown and d not in (w.dock_values, w.dock_drift, w.dock_events, w.dock_review):
                    if w.dockWidgetArea(d) == QtCore.Qt.DockWidgetArea.NoDockWidgetArea:
                        w.addDockWidget(Right, d)
                    w.tabifyDockWidget(w.dock_values, d)
        for d in docks:
            d.setVisible(d.objectName() in shown)
        review_width = 300 if view == "operator" else 280
        height = w.height() if w.isVisible() else w.screen().availableGeometry().height()
        # shares of what there is (asking for more grows the window): the technician's drift dock as tall as it can be
        split = [int(height * (0.75 if view == "technician" else 0.6)), int(height * 0.15)]
        w.resizeDocks([w.dock_review], [review_width], Horizontal)
        if view == "technician":
            w.resizeDocks([w.dock_drift], [int(width * 0.5)], Horizontal)
            w.resizeDocks([w.dock_drift, w.dock_events], split, QtCore.Qt.Orientation.Vertical)
            w.dock_drift.raise_()
        elif view == "engineer":
            w.resizeDocks([w.dock_values], [int(width * 0.3)], Horizontal)
            w.resizeDocks([w.dock_values, w.dock_events], split, QtCore.Qt.Orientation.Vertical)
            w.dock_drift.raise_()

    def open_drift(self) -> None:
        """The drift strip tapped: the drift dock, shown and in front."""
        d = self.w.dock_drift
        if d.isHidden():
            if self.w.dockWidgetArea(d) == QtCore.Qt.DockWidgetArea.NoDockWidgetArea:
                self.w.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, d)
            d.show()
            self.w.resizeDocks([d], [int(self.w.width() * 0.45)], QtCore.Qt.Orientation.Horizontal)
        d.raise_()
