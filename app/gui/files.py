"""The window's file dialogs: Qt's own dialog, listing files by name only, never opening one.

Why this matters: the window keeps the station's database (``station.sqlite``) open, and SQLite's locks on it
are POSIX advisory locks, which belong to the process and inode, not to a file descriptor. Any ``open()`` and
``close()`` of that file anywhere in the window's process drops every lock the process holds on it
(SQLite's "How To Corrupt An SQLite Database File", section 2.2). A file dialog showing the data directory
did exactly that: Qt's icon provider reads the first bytes of each listed file to guess its type, and the
native dialog's toolkit does the same. A command run beside the window (``users add``) then believed it was
the database's last user and deleted the window's ``-wal`` and ``-shm`` files from under it, and the
window's next write failed ("disk I/O error") or was lost.

So every dialog here is Qt's own widget dialog (never the platform's, which runs its toolkit's sniffing in
this process) with an icon provider that answers from the file's name and kind alone.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets

Option = QtWidgets.QFileDialog.Option


class NamesOnlyIconProvider(QtWidgets.QFileIconProvider):
    """Icons and type names from a file's name and kind (folder, file): no file is ever opened or read."""

    def __init__(self) -> None:
        super().__init__()
        style = QtWidgets.QApplication.style()
        self._folder = style.standardIcon(QtWidgets.QStyle.StandardPixmap.SP_DirIcon)
        self._file = style.standardIcon(QtWidgets.QStyle.StandardPixmap.SP_FileIcon)

    def icon(self, what: Any) -> Any:  # noqa: D102 - QFileInfo, or an IconType
        if isinstance(what, QtCore.QFileInfo):
            return self._folder if what.isDir() else self._file
        return self._folder if what == QtWidgets.QFileIconProvider.IconType.Folder else self._file

    def type(self, info: QtCore.QFileInfo) -> str:  # noqa: A003 - Qt's name
        if info.isDir():
            return "Folder"
        suffix = info.suffix()
        return f"{suffix.upper()} file" if suffix else "File"


def dialog(parent: Any, caption: str, directory: str = "", filter: str = "",  # noqa: A002 - Qt's name
           options: Any = None) -> QtWidgets.QFileDialog:
    """A file dialog that never reads the files it lists (see the module's note)."""
    d = QtWidgets.QFileDialog(parent, caption, directory, filter)
    d.setOptions((options or Option(0)) | Option.DontUseNativeDialog)
    d._icons = NamesOnlyIconProvider()  # kept alive with the dialog
    d.setIconProvider(d._icons)
    return d


def _chosen(d: QtWidgets.QFileDialog) -> tuple[str, str]:
    try:
        if d.exec() == QtWidgets.QDialog.DialogCode.Accepted and d.selectedFiles():
            return d.selectedFiles()[0], d.selectedNameFilter()
        return "", ""
    finally:
        d.deleteLater()


def open_file_name(parent: Any, caption: str, directory: str = "", filter: str = "",  # noqa: A002
                   options: Any = None) -> tuple[str, str]:
    """As ``QFileDialog.getOpenFileName``: the path chosen ("" when cancelled) and the filter."""
    d = dialog(parent, caption, directory, filter, options)
    d.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptOpen)
    d.setFileMode(QtWidgets.QFileDialog.FileMode.ExistingFile)
    return _chosen(d)


def save_file_name(parent: Any, caption: str, directory: str = "", filter: str = "",  # noqa: A002
                   options: Any = None) -> tuple[str, str]:
    """As ``QFileDialog.getSaveFileName``: the path chosen ("" when cancelled) and the filter."""
    d = dialog(parent, caption, directory, filter, options)
    d.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
    d.setFileMode(QtWidgets.QFileDialog.FileMode.AnyFile)
    return _chosen(d)


def existing_directory(parent: Any, caption: str, directory: str = "") -> str:
    """As ``QFileDialog.getExistingDirectory``: the folder chosen, "" when cancelled."""
    d = dialog(parent, caption, directory, "", Option.ShowDirsOnly)
    d.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
    return _chosen(d)[0]
