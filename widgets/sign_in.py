"""Sign-in widgets: badge and PIN on a keypad big enough for gloved hands, the first administrator's form,
the lock screen that covers the window, and the dialog that asks for the PIN again to sign an action.

They check nothing themselves: they emit what was typed and show what the shell tells them.
"""

from __future__ import annotations

from itertools import pairwise

from PySide6 import QtCore, QtGui, QtWidgets

KEY_SIZE = 64  # px, a gloved finger


def _pin_edit(name: str, placeholder: str = "PIN") -> QtWidgets.QLineEdit:
    e = QtWidgets.QLineEdit()
    e.setObjectName(name)
    e.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
    e.setValidator(QtGui.QRegularExpressionValidator(QtCore.QRegularExpression(r"[0-9]{0,12}")))
    e.setInputMethodHints(QtCore.Qt.InputMethodHint.ImhDigitsOnly | QtCore.Qt.InputMethodHint.ImhSensitiveData)
    e.setPlaceholderText(placeholder)
    e.setMinimumHeight(44)
    return e


class _TabKeeper(QtCore.QObject):
    """Tab and Shift+Tab move between the fields of a sign-in screen, whatever the window behind has on them."""

    KEYS = (QtCore.Qt.Key.Key_Tab, QtCore.Qt.Key.Key_Backtab)

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.ShortcutOverride and event.key() in self.KEYS:
            event.accept()  # a key press for the field (focus moves on), not a shortcut of the window
        return False


def _chain(owner: QtWidgets.QWidget, *widgets: QtWidgets.QWidget) -> None:
    """The fields' tab order, first to last, kept for Tab even where the window has a Tab shortcut."""
    keeper = _TabKeeper(owner)
    for a, b in pairwise(widgets):
        QtWidgets.QWidget.setTabOrder(a, b)
    for w in widgets:
        w.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        w.installEventFilter(keeper)


class Keypad(QtWidgets.QWidget):
    """Digits, erase and enter as large buttons; types into whichever line edit ``target()`` returns."""

    enter = QtCore.Signal()

    def __init__(self, target, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._target = target
        grid = QtWidgets.QGridLayout(self)
        grid.setSpacing(6)
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"]
        for i, k in enumerate(keys):
            b = QtWidgets.QPushButton(k)
            b.setObjectName(f"key_{'back' if k == '⌫' else k.lower()}")
            b.setFixedSize(KEY_SIZE, KEY_SIZE)
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda *_, k=k: self._press(k))
            grid.addWidget(b, i // 3, i % 3)

    def _press(self, key: str) -> None:
        if key == "OK":
            self.enter.emit()
            return
        edit = self._target()
        if edit is None:
            return
        if key == "⌫":
            edit.backspace()
        else:
            edit.insert(key)


class SignInPanel(QtWidgets.QWidget):
    """Badge id and PIN. ``submitted(badge, pin)``; the PIN field is cleared after each attempt."""

    submitted = QtCore.Signal(str, str)

    def __init__(self, title: str = "Sign in", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signInPanel")
        self.title = QtWidgets.QLabel(title)
        self.title.setObjectName("signInTitle")
        self.title.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.note = QtWidgets.QLabel("Scan or type your badge id, then your PIN.")
        self.note.setWordWrap(True)
        self.badge = QtWidgets.QLineEdit()
        self.badge.setObjectName("badgeEdit")
        self.badge.setPlaceholderText("Badge id")
        self.badge.setMinimumHeight(44)
        self.pin = _pin_edit("pinEdit")
        self.message = QtWidgets.QLabel("")
        self.message.setObjectName("signInMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828;")
        self.button = QtWidgets.QPushButton("Sign in")
        self.button.setObjectName("signInButton")
        self.button.setMinimumHeight(48)
        self.keypad = Keypad(self._focused_edit)
        lay = QtWidgets.QVBoxLayout(self)
        for w in (self.title, self.note, self.badge, self.pin, self.keypad, self.button, self.message):
            lay.addWidget(w)
        lay.addStretch(1)
        lay.setAlignment(self.keypad, QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.badge.returnPressed.connect(self.pin.setFocus)  # a badge scanner ends with Enter
        self.pin.returnPressed.connect(self._submit)
        self.button.clicked.connect(self._submit)
        self.keypad.enter.connect(self._submit)
        self._last_edit: QtWidgets.QLineEdit = self.badge
        _chain(self, self.badge, self.pin, self.button)

    def _focused_edit(self) -> QtWidgets.QLineEdit:
        f = QtWidgets.QApplication.focusWidget()
        if f in (self.badge, self.pin):
            self._last_edit = f  # type: ignore[assignment]
        return self._last_edit if self._last_edit is not None else self.pin

    def _submit(self) -> None:
        badge, pin = self.badge.text().strip(), self.pin.text()
        if not badge:
            self.show_error("Enter your badge id.")
            self.badge.setFocus()
            return
        if not pin:
            self.show_error("Enter your PIN.")
            self.pin.setFocus()
            return
        self.pin.clear()
        self.submitted.emit(badge, pin)

    def show_error(self, text: str) -> None:
        self.message.setText(text)

    def reset(self, badge: str = "", note: str | None = None) -> None:
        self.badge.setText(badge)
        self.pin.clear()
        self.message.clear()
        if note is not None:
            self.note.setText(note)
        (self.pin if badge else self.badge).setFocus()
        self._last_edit = self.pin if badge else self.badge


class FirstAdminPanel(QtWidgets.QWidget):
    """The station's first start: who is its first administrator. ``submitted(badge, name, pin)``."""

    submitted = QtCore.Signal(str, str, str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstAdminPanel")
        title = QtWidgets.QLabel("First start: the administrator")
        title.setWordWrap(True)
        title.setStyleSheet("font-size: 20px; font-weight: bold;")
        note = QtWidgets.QLabel("The station has no users yet. The administrator adds the operators, technicians "
                                "and engineers afterwards (inspection-station users add).")
        note.setWordWrap(True)
        self.badge = QtWidgets.QLineEdit()
        self.badge.setObjectName("adminBadge")
        self.badge.setPlaceholderText("Badge id")
        self.name = QtWidgets.QLineEdit()
        self.name.setObjectName("adminName")
        self.name.setPlaceholderText("Full name")
        self.pin = _pin_edit("adminPin", "PIN (4-12 digits)")
        self.pin2 = _pin_edit("adminPin2", "The same PIN again")
        self.message = QtWidgets.QLabel("")
        self.message.setObjectName("firstAdminMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828;")
        self.button = QtWidgets.QPushButton("Create administrator and sign in")
        self.button.setObjectName("createAdminButton")
        self.button.setMinimumHeight(48)
        lay = QtWidgets.QVBoxLayout(self)
        for w in (title, note, self.badge, self.name, self.pin, self.pin2, self.button, self.message):
            lay.addWidget(w)
        for e in (self.badge, self.name):
            e.setMinimumHeight(44)
        lay.addStretch(1)
        self.button.clicked.connect(self._submit)
        self.pin2.returnPressed.connect(self._submit)
        _chain(self, self.badge, self.name, self.pin, self.pin2, self.button)

    def _submit(self) -> None:
        badge, name, pin = self.badge.text().strip(), self.name.text().strip(), self.pin.text()
        if not badge or not name:
            self.show_error("Enter a badge id and a name.")
            return
        if len(pin) < 4:
            self.show_error("A PIN is 4 to 12 digits.")
            return
        if pin != self.pin2.text():
            self.show_error("The two PINs differ.")
            self.pin2.clear()
            return
        self.pin.clear()
        self.pin2.clear()
        self.submitted.emit(badge, name, pin)

    def show_error(self, text: str) -> None:
        self.message.setText(text)


class LockScreen(QtWidgets.QFrame):
    """Covers the whole window while nobody is signed in: sign-in, or the first administrator's form.

    The line keeps running behind it; nothing of the window can be clicked or typed into.
    """

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("lockScreen")
        self.setAutoFillBackground(True)
        self.setStyleSheet("#lockScreen { background: #263238; } #lockCard { background: palette(window); "
                           "border-radius: 8px; }")
        self.headline = QtWidgets.QLabel("Inspection Station — locked")
        self.headline.setObjectName("lockHeadline")
        self.headline.setStyleSheet("color: white; font-size: 24px;")
        self.headline.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.sign_in = SignInPanel()
        self.first_admin = FirstAdminPanel()
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.sign_in)
        self.stack.addWidget(self.first_admin)
        card = QtWidgets.QFrame()
        card.setObjectName("lockCard")
        card.setFixedWidth(420)
        QtWidgets.QVBoxLayout(card).addWidget(self.stack)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(self.headline)
        lay.addWidget(card, 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
        lay.addStretch(2)
        parent.installEventFilter(self)
        self.hide()

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 (Qt naming)
        if obj is self.parent() and event.type() == QtCore.QEvent.Type.Resize:
            self.setGeometry(self.parentWidget().rect())
        return False

    def show_sign_in(self, headline: str, badge: str = "", note: str | None = None) -> None:
        self.headline.setText(headline)
        self.stack.setCurrentWidget(self.sign_in)
        self._cover()
        self.sign_in.reset(badge, note)

    def show_first_admin(self) -> None:
        self.headline.setText("Inspection Station — first start")
        self.stack.setCurrentWidget(self.first_admin)
        self._cover()
        self.first_admin.badge.setFocus()

    def _cover(self) -> None:
        self.setGeometry(self.parentWidget().rect())
        self.show()
        self.raise_()


class SignatureDialog(QtWidgets.QDialog):
    """The PIN again, to sign a critical action; says who signs, what, and what the signature means."""

    def __init__(self, signer: str, action: str, meaning: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signatureDialog")
        self.setWindowTitle("Electronic signature")
        text = QtWidgets.QLabel(f"<b>{action}</b><br>Signed by {signer}, meaning: <b>{meaning}</b>.<br>"
                                "Enter your PIN to sign.")
        text.setWordWrap(True)
        self.pin = _pin_edit("signaturePin")
        self.keypad = Keypad(lambda: self.pin)
        self.message = QtWidgets.QLabel("")
        self.message.setStyleSheet("color: #c62828;")
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Sign")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.keypad.enter.connect(self.accept)
        lay = QtWidgets.QVBoxLayout(self)
        for w in (text, self.pin, self.keypad, self.message, buttons):
            lay.addWidget(w)
        lay.setAlignment(self.keypad, QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.pin.setFocus()
