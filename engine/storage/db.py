"""The station's SQLite database: one file in the data directory, opened the same way everywhere.

Every connection runs in WAL mode with ``synchronous=FULL``, foreign keys on and a busy timeout (a second
writer waits for the first instead of failing). The schema grows by the numbered migrations of
:mod:`engine.storage.migrations`, recorded in ``PRAGMA user_version``; each runs in its own transaction, so a
crash leaves the database at the last complete step.

This module is the boundary between SQLite and the rest of the station: an error that says the file itself
is unusable (not a database, damaged, read-only, locked, on a full disk) leaves it as a
:class:`DatabaseError` whose message is one sentence naming the file, wherever it happens, at opening or in
the middle of a query. Errors in the SQL itself (a constraint, a missing table) pass through unchanged.

A new database is never started beside stored images. When ``station.sqlite`` is missing, empty (zero bytes)
or holds no schema yet while the image store beside it holds image files, the database those images belonged
to is gone (deleted, truncated, replaced): :func:`connect` refuses with one sentence naming the images folder
rather than create a fresh schema, a fresh audit trail and a store whose recovery would take every image for
an orphan. The images stay as they are until someone restores the database or moves the images away.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.core.errors import StationError
from engine.storage.images import ImageStore
from engine.storage.migrations import MIGRATIONS

DB_NAME = "station.sqlite"
BUSY_TIMEOUT_S = 10.0

__all__ = ["BUSY_TIMEOUT_S", "DB_NAME", "MIGRATIONS", "DatabaseError", "connect", "read",
           "refuse_new_beside_images", "schema_version", "upgrade"]


class DatabaseError(StationError, RuntimeError):
    """The database cannot be opened, read, written or upgraded; one sentence naming the file."""


def _sentence(e: sqlite3.Error, path: Path | str, timeout_s: float = BUSY_TIMEOUT_S) -> str | None:
    """The one sentence for an error about the file itself, or None for an error in the SQL."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    msg = str(e)
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return f"{path} is not a readable station database ({msg})"
    if primary == sqlite3.SQLITE_READONLY:
        return f"{path} is read-only, and the station must write to its database ({msg})"
    if primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return f"{path} cannot be opened ({msg})"
    if primary == sqlite3.SQLITE_FULL:
        return f"the disk holding {path} is full ({msg})"
    if primary == sqlite3.SQLITE_IOERR:
        return f"{path} could not be read or written ({msg})"
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"{path} stayed locked by another program for {timeout_s:g} s ({msg})"
    return None


def refuse_new_beside_images(path: Path) -> None:
    """:class:`DatabaseError` when the image store beside ``path`` holds images: a new or empty database there
    has lost the record of them, and the station will not start afresh over them."""
    store = ImageStore(Path(path).parent)
    count = store.count()
    if count:
        raise DatabaseError(
            f"{store.root} holds {count} stored images but {path} is missing, empty or new, so the database that "
            f"named them is gone: restore {DB_NAME} from a backup, or move {store.root} away to start an empty "
            "store (nothing was changed)")


def _converted(e: sqlite3.Error, path: Path | str, timeout_s: float = BUSY_TIMEOUT_S) -> BaseException:
    sentence = _sentence(e, path, timeout_s)
    return e if sentence is None else DatabaseError(sentence)


class _Cursor(sqlite3.Cursor):
    """A cursor whose errors about the file become :class:`DatabaseError` (stepping can fail on any row)."""

    def execute(self, *args: Any) -> Any:
        try:
            return super().execute(*args)
        except sqlite3.Error as e:
            raise _converted(e, self.connection.station_path, self.connection.station_timeout) from e

    def executemany(self, *args: Any) -> Any:
        try:
            return super().executemany(*args)
        except sqlite3.Error as e:
            raise _converted(e, self.connection.station_path, self.connection.station_timeout) from e

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as e:
            raise _converted(e, self.connection.station_path, self.connection.station_timeout) from e

    def fetchmany(self, *args: Any) -> Any:
        try:
            return super().fetchmany(*args)
        except sqlite3.Error as e:
            raise _converted(e, self.connection.station_path, self.connection.station_timeout) from e

    def fetchall(self) -> Any:
        try:
            return super().fetchall()
        except sqlite3.Error as e:
            raise _converted(e, self.connection.station_path, self.connection.station_timeout) from e

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as e:
            raise _converted(e, self.connection.station_path, self.connection.station_timeout) from e


class _Connection(sqlite3.Connection):
    """The station's connection: every statement runs on a :class:`_Cursor`."""

    station_path: str = ""
    schema_before: int = 0  # PRAGMA user_version when this connection opened the file, before any migration
    station_timeout: float = BUSY_TIMEOUT_S

    def cursor(self, factory: Any = _Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:  # type: ignore[override]
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> Any:  # type: ignore[override]
        try:
            return super().executescript(script)
        except sqlite3.Error as e:
            raise _converted(e, self.station_path, self.station_timeout) from e

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as e:
            raise _converted(e, self.station_path, self.station_timeout) from e


def connect(path: Path, migrate: bool = True, busy_timeout_s: float | None = None) -> sqlite_utils.Database:
    """Open (and if asked, upgrade) the database at ``path``; :class:`DatabaseError` if it cannot be used.

    ``busy_timeout_s`` is how long a statement waits for another program's lock before it fails (default
    :data:`BUSY_TIMEOUT_S`; the ``[storage] busy_timeout_s`` setting for the feedback store).

    A file without any write permission bit is refused before SQLite sees it: the station writes to its
    database on every start (the journal mode, the migrations, the audit trail), and a file made read-only
    on purpose must not be opened as if it were not (root would write to it regardless of the bits).
    """
    path = Path(path)
    try:
        if not path.exists() or path.stat().st_size == 0:
            refuse_new_beside_images(path)  # before SQLite creates or writes the file
        if path.exists() and not path.stat().st_mode & 0o222:
            raise DatabaseError(f"{path} is read-only (no write permission), and the station must write to its "
                                "database")
    except OSError as e:
        raise DatabaseError(f"{path} cannot be opened ({e.strerror or e})") from None
    timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else float(busy_timeout_s)
    try:
        conn = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=False, isolation_level=None,
                               factory=_Connection)
    except sqlite3.Error as e:
        raise DatabaseError(_sentence(e, path, timeout_s) or f"{path} cannot be opened ({e})") from None
    conn.station_path = str(path)
    conn.station_timeout = timeout_s
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        db = sqlite_utils.Database(conn)
        version = schema_version(db)  # reads the header: a file that is no database fails here, not later
        if version == 0 and not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
            refuse_new_beside_images(path)
        db.conn.schema_before = version  # type: ignore[attr-defined]  # what the file held before this open
        if migrate:
            upgrade(db, path)
        elif version > len(MIGRATIONS):
            raise DatabaseError(f"database {path} is from a newer version of the station (schema {version})")
        elif version == 0 and db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
            raise DatabaseError(f"{path} is not a station database (it holds another program's tables)")
    except BaseException as e:
        conn.close()
        if isinstance(e, sqlite3.Error):
            raise DatabaseError(_sentence(e, path, timeout_s) or f"{path} cannot be opened ({e})") from None
        raise
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def upgrade(db: sqlite_utils.Database, path: Path | str = "") -> None:
    current = schema_version(db)
    if current > len(MIGRATIONS):
        raise DatabaseError(f"database {path} is from a newer version of the station (schema {current})")
    for number in range(current + 1, len(MIGRATIONS) + 1):
        try:
            db.execute("BEGIN IMMEDIATE")
            MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except (sqlite3.Error, DatabaseError) as e:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(e, DatabaseError):
                raise
            raise DatabaseError(f"database {path} could not be upgraded to schema {number}: {e}") from None


def read(data_dir: Path, sql: str, args: list[Any] | tuple = ()) -> list[dict[str, Any]]:
    """Rows of one query on the data directory's database, on a connection of its own; none if there is
    no database yet."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        refuse_new_beside_images(path)
        return []
    db = connect(path, migrate=False)
    try:
        if schema_version(db) == 0:
            return []  # an empty file: no station data yet
        cur = db.execute(sql, list(args))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        db.conn.close()
