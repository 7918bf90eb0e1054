"""Sign-in, lock screen and role gating for the main window.

``install(window)`` is called once while the window is built. Without a session or a request to sign in
(``MainWindow(..., sign_in=False)``, the default, as on a bench PC with ``[security] require_sign_in =
false``) it only marks the window's own actions with the permission each needs and leaves everything open.
Otherwise it covers the window with the lock screen until someone signs in (on a station without users:
until the first administrator is created), locks it again after the configured idle time, and gates
every action and widget that carries a ``permission`` property: disabled, with a tooltip that says which
role it needs. Any feature can gate its own action the same way::

    action.setProperty("permission", "export")   # a name from engine.security.auth.PERMISSIONS

An action in the Tools menu that declares no permission is open to engineers and admins only.

Critical actions ask for the PIN again and record what the signature means:
``window.auth.sign("approved", "model_changed", obj=..., old=..., new=...)`` returns whether it was signed.

Who is signed in is the station's (``Station.sign_in``): every review decision carries that badge. Checking a
PIN (scrypt) and the user table (SQLite) at the lock screen runs on the window's task runner, off the GUI thread.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app.gui.host import StationWindow
from engine.security import audit
from engine.security.auth import AuthError, AuthStore, Policy, Session, describe_permission, required_role
from engine.core.config import station_id
from engine.core.errors import StationError
from widgets.sign_in import LockScreen, SignatureDialog

PERMISSION_PROPERTY = "permission"
# A Tools action that declares no permission is closed to all but engineers (fail closed, not open).
UNDECLARED_TOOL = "readiness"
_BASE_TIP = "_tip_before_gating"
_WANTED = "_enabled_wanted"
_INPUT_EVENTS = {QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.MouseButtonPress, QtCore.QEvent.Type.MouseMove,
                 QtCore.QEvent.Type.Wheel, QtCore.QEvent.Type.TouchBegin, QtCore.QEvent.Type.TouchUpdate}


def mark_window_actions(window: Any) -> None:
    """The permission each of the main window's own actions and controls needs."""
    marks = {"review": ("act_freeze", "act_queue", "act_confirm", "act_reject", "act_unsure", "act_missed",
                        "act_undo", "act_next_det"),
             "models": ("act_model",), "tolerances": ("act_conf_down", "act_conf_up"),
             "camera_settings": ("act_open",)}
    for permission, names in marks.items():
        for name in names:
            obj = getattr(window, name, None)
            if obj is not None:
                obj.setProperty(PERMISSION_PROPERTY, permission)
    for a in getattr(window, "act_classes", ()):
        a.setProperty(PERMISSION_PROPERTY, "review")
    for name, permission in (("model_controls", "models"), ("chooser", "camera_settings"), ("review", "review")):
        w = getattr(window, name, None)
        if w is not None:
            w.setProperty(PERMISSION_PROPERTY, permission)


def permission_of(obj: QtCore.QObject, window: Any) -> str | None:
    """The permission an action or widget needs: its ``permission`` property; for a Tools action without
    one, the engineer's; ``None`` when it is not gated."""
    p = obj.property(PERMISSION_PROPERTY)
    if p:
        return str(p)
    menu = getattr(window, "tools_menu", None)
    if isinstance(obj, QtGui.QAction) and menu is not None and obj in menu.actions() and not obj.isSeparator():
        return UNDECLARED_TOOL
    return None


def gated_objects(window: QtWidgets.QWidget) -> list[QtCore.QObject]:
    """Every action and widget of the window that needs a permission (see :func:`permission_of`)."""
    seen: dict[int, QtCore.QObject] = {}
    actions = list(window.findChildren(QtGui.QAction)) + list(window.actions())
    for menu in window.findChildren(QtWidgets.QMenu):
        actions += menu.actions()
    for obj in actions + list(window.findChildren(QtWidgets.QWidget)):
        if permission_of(obj, window) is not None:
            seen[id(obj)] = obj
    return list(seen.values())


def explain(permission: str, session: Session | None) -> str:
    who = f"signed in: {session.name or session.badge} ({session.role})" if session is not None else "nobody signed in"
    return f"{describe_permission(permission)} needs the {required_role(permission)} role — {who}"


class AuthController(QtCore.QObject):
    """Who is signed in at the window, the lock screen, the idle lock, and the gating of actions."""

    session_changed = QtCore.Signal()

    def __init__(self, window: StationWindow, store: AuthStore, policy: Policy, session: Session | None = None) -> None:
        super().__init__(window)  # type: ignore[arg-type]
        self.window = window
        self.station = window.station
        self._checking = False  # a PIN being checked on the task runner
        self.store = store
        self.policy = policy
        self.session: Session | None = session
        self.locked = session is None
        self._locked_badge = ""
        self._applying = False
        self.lock_screen = LockScreen(window)
        self.lock_screen.sign_in.submitted.connect(self._sign_in)
        self.lock_screen.first_admin.submitted.connect(self._create_admin)
        app = QtWidgets.QApplication.instance()
        app.installEventFilter(self)
        window.installEventFilter(self)
        self.idle_timer = QtCore.QTimer(self)
        self.idle_timer.setObjectName("idleLockTimer")
        self.idle_timer.setInterval(5000)
        self.idle_timer.timeout.connect(self.check_idle)
        self.idle_timer.start()
        self._make_actions()
        self._watch_settings()
        self.station.permits = self.allows
        self.station.sign_in(session)
        if session is None:
            self.show_lock("Inspection Station — sign in")
        else:
            self._show_operator(session)
            self._log("sign_in", session, obj=f"user {session.badge}", reason="signed in before the window opened")
        QtCore.QTimer.singleShot(0, self.apply)  # after the window (and every feature) has added its actions

    # ------------------------------------------------------------------ actions

    def _make_actions(self) -> None:
        w = self.window

        def action(text: str, shortcut: str, slot: Any, tip: str) -> QtGui.QAction:
            a = QtGui.QAction(text, w)
            a.setShortcut(QtGui.QKeySequence(shortcut))
            a.setToolTip(f"{tip} ({a.shortcut().toString()})")
            a.triggered.connect(slot)
            w.addAction(a)
            return a

        self.act_lock = action("Lock", "Ctrl+L", lambda: self.lock("locked by the user"),
                               "Lock the station; the same or another badge signs in again")
        self.act_switch = action("Switch operator", "Ctrl+Shift+U", self.switch_user,
                                 "Shift change: the next operator signs in")
        self.act_verify = action("Verify audit trail", "Ctrl+Shift+T", self.verify_audit,
                                 "Check the audit trail's hash chain and the decisions it covers")
        menu = w.menuBar().addMenu("&User")
        menu.setObjectName("userMenu")
        for a in (self.act_lock, self.act_switch, self.act_verify):
            menu.addAction(a)
        self.user_label = QtWidgets.QLabel()
        self.user_label.setObjectName("signedInUser")
        self.user_label.setStyleSheet("padding: 0 8px; font-weight: bold;")
        w.menuBar().setCornerWidget(self.user_label, QtCore.Qt.Corner.TopRightCorner)

    def _watch_settings(self) -> None:
        """Setting changes made in the window go into the audit trail (the threshold once it stops moving)."""
        controls = getattr(self.window, "model_controls", None)
        self._confidence_logged = self.station.model.confidence
        self._confidence_timer = QtCore.QTimer(self)
        self._confidence_timer.setSingleShot(True)
        self._confidence_timer.setInterval(1500)
        self._confidence_timer.timeout.connect(self._log_confidence)
        if controls is not None:
            controls.confidence_changed.connect(lambda *_: self._confidence_timer.start())

    def _log_confidence(self) -> None:
        new = self.station.model.confidence
        if new != self._confidence_logged:
            self._log("setting_changed", self.session, obj="confidence threshold", old=self._confidence_logged,
                      new=new)
            self._confidence_logged = new

    # ------------------------------------------------------------------ state

    def allows(self, permission: str) -> bool:
        return self.session is not None and not self.locked and self.session.can(permission)

    def model_version(self) -> str:
        return self.station.model_name

    def show_lock(self, headline: str, note: str | None = None) -> None:
        """The lock screen: the first administrator's form on a station without users, else the sign-in.

        A database that cannot be read still covers the window: with the sign-in, and the reason on it."""
        try:
            has_users = self.store.has_users()
        except (StationError, sqlite3.Error) as e:
            has_users = True  # cannot tell: never leave the window open because of it
            note = f"{note + ' ' if note else ''}The station's database cannot be read: {e}"
        if not has_users:
            self.lock_screen.show_first_admin()
        else:
            self.lock_screen.show_sign_in(headline, self._locked_badge, note)

    def lock(self, reason: str = "locked", note: str | None = None, keep_badge: bool = True) -> None:
        """Cover the window; the line keeps running. The signed-in user stays recorded until the next sign-in.

        The window locks whatever happens to the lock's audit entry: written on the task runner, an entry that
        cannot be written is said on the lock screen and in the event log as NOT saved."""
        if self.locked:
            return
        s = self.session
        self.locked = True
        self._locked_badge = s.badge if (s is not None and keep_badge) else ""
        who = f"{s.name} ({s.badge})" if s is not None else ""
        try:
            self.show_lock(f"Locked — {who}" if who and keep_badge else "Inspection Station — sign in",
                           note or "Sign in again, or with another badge to switch operator.")
        finally:  # covered and gated even if the lock screen could not say everything
            self.lock_screen.show()
            self.lock_screen.raise_()
            self.apply()
        if s is not None:
            self._log("lock", s, obj=f"user {s.badge}", reason=reason, on_error=self._lock_not_saved)

    def _lock_not_saved(self, e: BaseException) -> None:
        message = f"The lock was NOT saved in the audit trail: {e}"
        self.window.report("error", message)
        if self.locked:
            self.lock_screen.sign_in.show_error(message)

    def switch_user(self) -> None:
        self.lock("operator switch", note="Shift change: the next operator signs in with their badge and PIN.",
                  keep_badge=False)

    def check_idle(self) -> None:
        minutes = self.policy.idle_lock_minutes
        if self.session is not None and not self.locked and minutes > 0 and self.session.idle_s() > minutes * 60:
            self.lock(f"idle for {minutes:g} minutes")

    def _sign_in(self, badge: str, pin: str) -> None:
        if self._checking:
            return
        previous = self.session
        if previous is None:
            action = "sign_in"
        elif badge == previous.badge:
            action = "unlock"
        else:
            action = "switch_user"
        self._checking = True
        self.window.tasks.run(self.store.authenticate, badge, pin, action=action, model_version=self.model_version(),
                              reason=f"from {previous.badge}" if action == "switch_user" else "",
                              on_done=self._signed_in, on_error=lambda e: self._refused(self.lock_screen.sign_in, e))

    def _refused(self, panel: Any, e: BaseException) -> None:
        self._checking = False
        panel.show_error(str(e) if isinstance(e, AuthError) else f"the sign-in failed: {e}")

    def _create_admin(self, badge: str, name: str, pin: str) -> None:
        if self._checking:
            return
        self._checking = True
        self.window.tasks.run(self.store.add_user, badge, name, "admin", pin, None, on_done=self._admin_created,
                              on_error=lambda e: self._refused(self.lock_screen.first_admin, e))

    def _admin_created(self, session: Session | None) -> None:
        if session is None:  # someone created the first admin in the meantime: sign in as usual
            self._checking = False
            self.show_lock("Inspection Station — sign in")
            return
        self._signed_in(session)

    def _signed_in(self, session: Session) -> None:
        self._checking = False
        self.session = session
        self.station.sign_in(session)
        self.locked = False
        self._locked_badge = ""
        session.touch()
        self.lock_screen.hide()
        self._show_operator(session)
        self.apply()
        self.session_changed.emit()

    def _show_operator(self, session: Session) -> None:
        review = getattr(self.window, "review", None)
        if review is not None:  # the station's operator is the signed-in badge; the panel shows it
            review.operator.setText(session.badge)
            review.operator.setReadOnly(True)
            review.operator.setToolTip(f"Signed in: {session.name} ({session.role})")

    def _log(self, action: str, who: Session | None, on_error: Any = None, **kw: Any) -> None:
        """An audit entry, written on the task runner (in order with the sign-in checks)."""
        self.window.tasks.run(self.store.log, action, who, model_version=self.model_version(), **kw,
                              on_error=on_error or (lambda e: self.window.report(
                                  "error", f"{action.replace('_', ' ')} NOT saved in the audit trail: {e}")))

    # ------------------------------------------------------------------ signatures

    def sign(self, meaning: str, action: str, obj: str = "", old: Any = None, new: Any = None, reason: str = "",
             pin: str | None = None, label: str | None = None) -> bool:
        """The signed-in user's PIN again for a critical action (asked in a dialog unless ``pin`` is given);
        recorded with the meaning of the signature. False when cancelled, refused or nobody is signed in."""
        s = self.session
        if s is None or self.locked:
            return False
        dialog = None
        while True:
            if pin is None:
                if dialog is None:
                    dialog = SignatureDialog(f"{s.name} ({s.badge})", label or action.replace("_", " ").capitalize(),
                                             meaning, self.window)
                if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
                    return False
                typed = dialog.pin.text()
            else:
                typed = pin
            refused, locked = self._wait_for(self._check_signature, s, typed, meaning, action, obj=obj, old=old,
                                             new=new, reason=reason, model_version=self.model_version())
            if refused is None:
                s.touch()
                return True
            if locked:
                self.lock("account locked after wrong PINs", keep_badge=False)
                return False
            if dialog is None:
                return False
            dialog.message.setText(refused)
            dialog.pin.clear()

    def _check_signature(self, s: Session, typed: str, meaning: str, action: str,
                         **kw: Any) -> tuple[str | None, bool]:
        """On the task runner: the PIN checked (scrypt) and the signature recorded; the refusal and whether the
        account is now locked."""
        try:
            self.store.sign(s, typed, meaning, action, **kw)
            return None, False
        except AuthError as e:
            user = self.store.user(s.badge)
            return str(e), user is not None and user["locked_until"] > time.time()

    def _wait_for(self, job: Any, *args: Any, **kwargs: Any) -> Any:
        """``job`` on the task runner while the window keeps turning (a local event loop, as a modal dialog has);
        its result, or its exception raised here."""
        loop = QtCore.QEventLoop(self)
        out: dict[str, Any] = {}

        def done(key: str, value: Any) -> None:
            out[key] = value
            loop.quit()

        self.window.tasks.run(job, *args, on_done=lambda r: done("result", r), on_error=lambda e: done("error", e),
                              **kwargs)
        loop.exec()
        if "error" in out:
            raise out["error"]
        return out["result"]

    def verify_audit(self) -> None:
        self.window.tasks.run(audit.verify, self.store.data_dir,
                              on_done=lambda v: self.window.report("audit" if v.ok else "error", v.sentence()))

    # ------------------------------------------------------------------ gating

    def apply(self) -> None:
        """Enable or disable every gated action and widget for the signed-in user, with the reason."""
        s = self.session
        self.user_label.setText("Locked" if self.locked or s is None else f"Signed in: {s.name} ({s.badge}) · {s.role}")
        self.user_label.adjustSize()
        self.window.menuBar().setCornerWidget(self.user_label, QtCore.Qt.Corner.TopRightCorner)  # lays it out again
        self.act_switch.setEnabled(s is not None)
        self.act_lock.setEnabled(s is not None and not self.locked)
        for menu in self.window.findChildren(QtWidgets.QMenu):
            menu.setToolTipsVisible(True)
        self._applying = True
        try:
            for obj in gated_objects(self.window):
                self._gate(obj)
        finally:
            self._applying = False

    def _gate(self, obj: QtCore.QObject) -> None:
        permission = permission_of(obj, self.window) or UNDECLARED_TOOL
        if obj.property(_BASE_TIP) is None:
            obj.setProperty(_BASE_TIP, obj.toolTip())
            obj.setProperty(_WANTED, obj.isEnabled())
            signal = obj.changed if isinstance(obj, QtGui.QAction) else None
            if signal is not None:
                signal.connect(lambda o=obj: self._owner_changed(o))
        allowed = self.session is not None and self.session.can(permission)
        base = obj.property(_BASE_TIP) or ""
        self._applying = True
        try:
            if allowed:
                obj.setEnabled(bool(obj.property(_WANTED)))
                obj.setToolTip(base)
                if isinstance(obj, QtGui.QAction):
                    obj.setStatusTip("")
            else:
                obj.setEnabled(False)
                why = explain(permission, self.session)
                if not obj.property(PERMISSION_PROPERTY):
                    why = "This tool declares no permission, so it needs the engineer role — " + why.split(" — ")[-1]
                obj.setToolTip(f"{base} — {why}" if base else why)
                if isinstance(obj, QtGui.QAction):
                    obj.setStatusTip(why)
        finally:
            self._applying = False

    def _owner_changed(self, action: QtGui.QAction) -> None:
        """The action's owner enabled or disabled it: remember what it wants, keep it off if not allowed."""
        if self._applying:
            return
        self._applying = True
        try:
            action.setProperty(_WANTED, action.isEnabled())
            permission = permission_of(action, self.window)
            if permission and action.isEnabled() and not (self.session is not None and self.session.can(permission)):
                action.setEnabled(False)
        finally:
            self._applying = False

    # ------------------------------------------------------------------ events

    def _inside(self, obj: QtCore.QObject, root: QtCore.QObject) -> bool:
        while obj is not None:
            if obj is root:
                return True
            obj = obj.parent()
        return False

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        t = event.type()
        if obj is self.window:
            if t in _RESTACK_EVENTS and self.lock_screen.isVisible():
                # Docks added, shown or laid out later (the saved layout is restored after this) stay under it.
                QtCore.QTimer.singleShot(0, self.lock_screen.raise_)
            elif t == QtCore.QEvent.Type.Close and self.session is not None and not self.locked:
                self._log("sign_out", self.session, obj=f"user {self.session.badge}", reason="window closed")
                self.locked = True
            return False
        if t in _INPUT_EVENTS:
            if self.session is not None and not self.locked:
                self.session.touch()
            return False
        # No shortcut of the window works while it is locked.
        return self.locked and t == QtCore.QEvent.Type.Shortcut and self._inside(obj, self.window) \
            and not self._inside(obj, self.lock_screen)


_RESTACK_EVENTS = (QtCore.QEvent.Type.ChildAdded, QtCore.QEvent.Type.Show, QtCore.QEvent.Type.LayoutRequest,
                   QtCore.QEvent.Type.WindowActivate)


def install(window: StationWindow, session: Session | None = None, sign_in: bool = False) -> AuthController | None:
    """Mark the window's actions with their permissions and, with a signed-in ``session`` or ``sign_in``
    asked for, start sign-in and gating."""
    mark_window_actions(window)
    if session is None and not sign_in:
        window.auth = None
        return None
    config = window.config
    policy = Policy.from_config(config)
    store = AuthStore(window.data_dir, policy, station=station_id(config))
    window.auth = AuthController(window, store, policy, session)
    return window.auth
