"""The TUI and the server's roles (issue 15): opening a device or a patient's history is
on record, and a screen offers only what the login may do.

Called from worker threads; a refusal (a role that may not read it) is shown in one line."""

from __future__ import annotations


def log_opened(app, what: str, *, patients=(), devices=(), scope: str = "", engine=None) -> bool:
    """Append the read entry for what the screen shows; False (and a one-line notice) when refused."""
    from devicelog.problems import InputError
    from devicelog.store.audit import log_read

    try:
        log_read(engine if engine is not None else app.engine, author=app.user, what=what, patients=patients, devices=devices, scope=scope)
    except InputError as exc:
        app.call_from_thread(app.notify, f"Not shown: {exc}", severity="error")
        return False
    return True


def may_amend(engine) -> bool:
    """Whether this login may amend or void an entry: always on SQLite; on a server set up
    by ``devicelog admin setup``, only ``devicelog_clinician`` (row-level security on
    ``event``), the owner role's members and superusers."""
    if engine.dialect.name != "postgresql":
        return True
    from devicelog.store.access import holds_clinician_rights

    with engine.connect() as conn:
        return holds_clinician_rights(conn)
