"""The Models dock: the registry's models, promote and rollback, and the running model following the champion.

Every two seconds the registry's state file is looked at on the task runner (its modification time and size,
then the registry itself only when those changed). When the champion changed, by the dock or by ``model
promote``/``model rollback`` from the command line beside the window, and the station follows the champion (no
model was chosen by hand), the new champion is proven on the task runner (loaded and run on the latest frame) and
swapped in; one that fails leaves the current model running, with one sentence.

Promote and rollback are signed: the signed-in user's PIN again (the signature dialog), an engineer or admin;
the signature entry in the audit trail holds both models' names and SHA-256. A window without sign-in may
change the champion only on a station without users (recorded as not secured), as the command line does.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore

from engine.core.errors import StationError
from engine.inference import registry
from widgets.model_registry_panel import ModelRegistryPanel

CHECK_MS = 2000
NOT_SWAPPING = object()


class ModelsController:
    def __init__(self, window: Any) -> None:
        self.w = window
        self.data_dir = window.data_dir
        self.panel = ModelRegistryPanel()
        self.panel.promote_requested.connect(lambda name: self.promote(name))
        self.panel.rollback_requested.connect(lambda: self.rollback())
        self.token: Any = None
        self.history: list[str] = []
        self.checking = False
        self.swapping: Any = NOT_SWAPPING  # the champion being proven (None: the built-in model)
        self.timer = QtCore.QTimer(window)
        self.timer.setObjectName("registryCheck")
        self.timer.setInterval(CHECK_MS)
        self.timer.timeout.connect(self.check)
        window.station.model_ready.connect(window.tasks.deliver(self._running))
        if window.station.model_note:
            window.report("error", window.station.model_note)

    def start(self) -> None:
        self.timer.start()
        self.check()

    # ------------------------------------------------------------------ following the champion

    def check(self) -> None:
        """Look at the registry on the task runner; act on a change."""
        if self.checking:
            return
        self.checking = True
        self.w.tasks.run(self._read, self.token, on_done=self._read_done, on_error=self._read_failed)

    def _read(self, token: Any) -> Any:  # on the task runner
        now = registry.state_token(self.data_dir)
        if now == token:
            return None
        rows = [e.summary() for e in registry.entries(self.data_dir)]
        return now, rows, registry.champion_path(self.data_dir), registry.read_state(self.data_dir)["history"]

    def _read_failed(self, error: BaseException) -> None:
        self.checking = False
        token = registry.state_token(self.data_dir)
        if token != self.token:  # say it once per change of the file
            self.token = token
            self.w.report("error", f"{error}; the current model goes on running")

    def _read_done(self, result: Any) -> None:
        self.checking = False
        if result is None:
            return
        first = self.token is None
        self.token, rows, champion, self.history = result
        self.panel.set_models(rows)
        st = self.w.station
        name = next((r["name"] for r in rows if r["status"] == "champion"), "the champion")
        if first and not st.follows_champion and len(rows) > 1:
            self.w.report("model", f"model {st.model.label} as asked for; the registry's champion {name} is not used")
        if not st.follows_champion or champion == st.model.path or champion == self.swapping:
            return
        self.swapping = champion
        self.w.report("model", f"the champion is now {name}: loading it and running it on one frame")
        self.w.tasks.run(st.prove_model, champion, on_done=lambda r: self._proven(champion, r),
                         on_error=self._refused)

    def _proven(self, path: str | None, result: Any) -> None:
        self.swapping = NOT_SWAPPING
        if not self.w.station.follows_champion:
            return  # a model chosen by hand meanwhile wins
        self.w._model_proven(path, result)

    def _refused(self, error: BaseException) -> None:
        self.swapping = NOT_SWAPPING
        self.w._model_refused(error)

    def _running(self, detector: Any) -> None:
        if detector is self.w.station.detector:
            follows = "the champion" if self.w.station.follows_champion else "chosen by hand"
            self.panel.set_running(f"{getattr(detector, 'name', '?')} ({follows})")

    # ------------------------------------------------------------------ promote and rollback

    def _sign(self, action: str, old: Any, new: Any, pin: str | None, label: str) -> bool:
        """The signature of an engineer; True to go on. Without sign-in, only a station without users."""
        auth = self.w.auth
        if auth is None:
            return True  # checked on the task runner (users exist: refused), see _unsigned
        s = auth.session
        if s is None or not s.can("models"):
            who = f"{s.name or s.badge} is signed in as {s.role}" if s is not None else "nobody is signed in"
            self.w.report("error", f"changing the champion model needs the engineer role; {who}")
            return False
        return auth.sign("approved", action, obj="champion model", old=old, new=new, pin=pin, label=label)

    def _unsigned(self, action: str, work: Any) -> Any:  # on the task runner
        from engine.core.config import station_id
        from engine.security.auth import AuthStore, Policy, unsecured_session

        store = AuthStore(self.data_dir, Policy.from_config(self.w.config), station=station_id(self.w.config))
        if store.has_users():
            raise StationError("changing the champion model is signed by an engineer: start the window with sign-in")
        old, new = work()
        store.log(action, unsecured_session(), obj="champion model", old={"name": old.name, "sha256": old.sha256},
                  new={"name": new.name, "sha256": new.sha256}, meaning="approved",
                  reason="station not secured (no users yet)")
        return old, new

    def _row(self, name: str) -> dict[str, Any] | None:
        r = next((r for r in self.panel.rows if r["name"] == name), None)
        return None if r is None else {"name": r["name"], "sha256": r["sha256"]}

    def _champion(self) -> dict[str, Any] | None:
        return next(({"name": r["name"], "sha256": r["sha256"]} for r in self.panel.rows
                     if r["status"] == "champion"), None)

    def promote(self, name: str, pin: str | None = None) -> None:
        """Make the registered model ``name`` the champion (signed); the running model follows it."""
        old, new = self._champion(), self._row(name)
        if old is None or new is None:
            self.w.report("error", f"no model {name} in the registry")
            return
        if new["name"] == old["name"]:
            self.w.report("error", f"{name} is the champion already")
            return
        if not self._sign("model_promoted", old, new, pin, f"Promote {name} to champion"):
            return
        self._change("model_promoted", lambda: registry.promote(self.data_dir, name))

    def rollback(self, pin: str | None = None) -> None:
        """The champion before this one runs again (signed); this one is retired."""
        old = self._champion()
        if old is None or old["name"] == registry.BUILTIN:
            self.w.report("error", "the built-in model is the champion; there is no earlier champion to roll back to")
            return
        earlier = [h for h in self.history if h != old["name"]]
        new = self._row(earlier[-1] if earlier else registry.BUILTIN)
        if new is None or not self._sign("model_rolled_back", old, new, pin, f"Roll back {old['name']}"):
            return
        self._change("model_rolled_back", lambda: registry.rollback(self.data_dir))

    def _change(self, action: str, work: Any) -> None:
        self.w.station.follows_champion = True  # a change made here: the station runs the champion
        job = (lambda: self._unsigned(action, work)) if self.w.auth is None else work
        self.w.tasks.run(job, on_done=self._changed, on_error=lambda e: self.w.report("error", str(e)))

    def _changed(self, result: Any) -> None:
        old, new = result
        self.w.report("model", f"{new.name} ({new.title}) is the champion; {old.name} is retired")
        self.check()


def install(window: Any) -> ModelsController:
    """The Models dock beside the others, and the periodic look at the registry."""
    from app.gui.auth import PERMISSION_PROPERTY

    c = ModelsController(window)
    c.panel.buttons.setProperty(PERMISSION_PROPERTY, "models")  # promote and rollback: engineers and admins
    window.models = c
    window.dock_models = window._dock("Models", "modelsDock", c.panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
                                   views=("engineer",))
    window.tabifyDockWidget(window.dock_drift, window.dock_models)  # where the engineer's view puts it too
    window.dock_drift.raise_()
    c.start()
    return c
