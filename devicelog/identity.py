"""Who is at the keyboard (issue 15): the author devicelog records for a write or a read.

- **On a PostgreSQL server** the author is the session's login (``session_user``), set by
  the server when the person authenticated (``pg_hba.conf``).  ``--user`` is refused: a
  name typed on the command line proves nothing.  After ``devicelog admin setup`` the
  server itself refuses an audit entry signed with another name
  (``store.access``, trigger ``audit_author_is_login``).
- **On a SQLite file** the author is the operating-system login of the process.
  ``--user NAME`` records a display name beside it, never instead of it:
  ``jdoe (Jane Doe)``.

Second-person verification (issue 14) will take its verifier from here too: on a server
the verifier confirms in a session of their own, so the same ``server_login`` names them.

Imports nothing heavy: the TUI reads the user before SQLAlchemy is loaded.
"""

from __future__ import annotations

import os


class IdentityError(RuntimeError):
    """An identity devicelog will not record (``--user`` on a server)."""


def os_login() -> str:
    """The operating-system login of this process."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return os.environ.get("USER") or "unknown"


def local_author(display_name: str | None = None) -> str:
    """The author on a SQLite file: the OS login, with ``--user``'s display name beside it."""
    login = os_login()
    display = (display_name or "").strip()
    if not display or display == login:
        return login
    return f"{login} ({display})"


def login_of(author: str) -> str:
    """The login part of an author as recorded: ``jdoe (Jane Doe)`` → ``jdoe``."""
    return author.split(" (", 1)[0]


def is_server(db: str | os.PathLike | None) -> bool:
    """Whether ``--db`` (or ``$DEVICELOG_DB``) names a database server, not a SQLite file."""
    value = str(db) if db else os.environ.get("DEVICELOG_DB", "")
    return "://" in value and not value.startswith("sqlite")


def refuse_display_name_on_server(db, display_name: str | None) -> None:
    """``--user`` on a server: refused, in one line."""
    if display_name and is_server(db):
        raise IdentityError(
            f"--user {display_name!r} is refused on a database server: the author is the login you "
            "connected with (ask for a login of your own, and connect with it)"
        )


def server_login(engine) -> str:
    """``session_user`` of a connection to the server: the login that authenticated."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT session_user")).scalar()
