"""Roles and rights on a PostgreSQL server (issue 15): the server enforces who may do what.

``devicelog admin setup`` (:func:`setup`), run once by the database owner:

- creates ``devicelog_owner`` (NOLOGIN), which then owns every table, sequence and
  function of the schema: no login that connects owns anything, so no login can drop
  a trigger, disable row-level security or ALTER a table;
- creates the group roles of :data:`GROUPS` and grants each exactly :data:`RIGHTS`;
- application roles get no UPDATE, DELETE or TRUNCATE on clinical (``patient``,
  ``device``, ``event``) or audit rows, except the two status columns devicelog itself
  updates (``device.status`` and ``device.replaced_by_id`` when a device is explanted or
  replaced; ``patient.status``: no code path updates it today, so it is not granted);
- the derived tables (``due_item``, ``device_note``, ``forecast_cache``) are rewritten
  on every write, so the writing roles may INSERT and DELETE them (never TRUNCATE).
  They hold nothing that is not computed from the records, and ``devicelog verify``
  recomputes them and names any difference;
- the audit trail: every role may INSERT an entry (a read is logged too) and read the
  chain head (``id``, ``hash``) to chain it, but only ``devicelog_auditor`` reads the
  entries.  A trigger refuses an entry whose author is not ``session_user``
  (the database owner's maintenance entries, e.g. "devicelog migration", excepted);
- row-level security on ``event``: a nurse records new entries only (``amends_id``
  NULL); amending and voiding are a clinician's;
- the scheduler reads the due list (``due_item``, and ``device_note``: the warnings the
  list prints under it, computed by the rules), patients and devices (contact details),
  never ``event`` (the clinical history, its free-text notes) or the audit trail.

Setup is idempotent: run it again after an upgrade that adds a table.

:func:`refusal` turns the server's "permission denied" into one line naming the role
that would have been allowed (``AccessRefused``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text

from devicelog.problems import InputError, Problem

OWNER = "devicelog_owner"
NURSE, CLINICIAN, SCHEDULER, AUDITOR, ADMIN = (
    "devicelog_nurse",
    "devicelog_clinician",
    "devicelog_scheduler",
    "devicelog_auditor",
    "devicelog_admin",
)
#: The group roles, with what a person holding each may do (``admin who`` and the docs).
GROUPS = {
    NURSE: "register patients and devices; record visits; read what a nurse needs",
    CLINICIAN: "everything a nurse may; amend and void entries; override a soft drug limit",
    SCHEDULER: "read the due list and patients' contact details; no clinical history, no visit notes",
    AUDITOR: "read the audit trail (devicelog audit); run devicelog verify",
    ADMIN: "grant and revoke these roles (devicelog admin grant/revoke/who)",
}

_CATALOGUE = ("device_model", "drug", "alembic_version", "forecast_cache", "patient_search")
_DERIVED = ("due_item", "device_note")
_WRITER_TABLES = {
    # table: privileges
    **{t: "SELECT" for t in _CATALOGUE},
    "patient": "SELECT, INSERT",
    "device": "SELECT, INSERT, UPDATE (status, replaced_by_id)",
    "event": "SELECT, INSERT",
    "advisory": "SELECT, INSERT",
    "advisory_match": "SELECT, INSERT",
    "advisory_action": "SELECT, INSERT",
    "due_ack": "SELECT, INSERT",
    "audit": "SELECT (id, hash), INSERT",
    "due_item": "SELECT, INSERT, DELETE",
    "device_note": "SELECT, INSERT, DELETE",
    "forecast_cache": "SELECT, INSERT, UPDATE, DELETE",
}
#: group role -> {table: privileges}.  Sequences: USAGE on those of the tables a role inserts into.
RIGHTS: dict[str, dict[str, str]] = {
    NURSE: _WRITER_TABLES,
    CLINICIAN: _WRITER_TABLES,
    SCHEDULER: {
        **{t: "SELECT" for t in _CATALOGUE},
        "patient": "SELECT",
        "device": "SELECT",
        "advisory": "SELECT",
        "due_item": "SELECT",
        "device_note": "SELECT",
        "due_ack": "SELECT",  # the due list hides what is acknowledged or snoozed
        "audit": "SELECT (id, hash), INSERT",
    },
    AUDITOR: {
        **{t: "SELECT" for t in _CATALOGUE + _DERIVED + ("patient", "device", "event", "advisory", "advisory_match", "advisory_action", "due_ack")},
        "audit": "SELECT, INSERT",
    },
    ADMIN: {},
}
# Issue 14 (second-person verification) hooks in here: the verifier confirms in a session
# of their own login (``identity.server_login``), and the table that records a
# confirmation gets INSERT for CLINICIAN only (a policy like ``event_record_any``, with
# ``verifier = session_user`` and ``verifier <> author`` in its WITH CHECK).

#: Row-level security on ``event``: (policy, command, role, condition).
EVENT_POLICIES = [
    ("event_read", "SELECT", f"{NURSE}, {CLINICIAN}, {AUDITOR}", "USING (true)"),
    # Issue 18.2: a soft drug limit is overridden by a clinician only.
    ("event_record_new", "INSERT", NURSE,
     "WITH CHECK (amends_id IS NULL AND COALESCE(json_typeof(data -> 'limit_override'), 'null') = 'null')"),
    ("event_record_any", "INSERT", CLINICIAN, "WITH CHECK (true)"),
]
_AUTHOR_CHECK_BODY = (
    " BEGIN IF NEW.author IS DISTINCT FROM session_user::text AND NOT pg_has_role(session_user, 'devicelog_owner', 'MEMBER') THEN"
    " RAISE EXCEPTION 'devicelog: an audit entry is signed by the login that writes it (%), not %', session_user, NEW.author"
    " USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NEW; END "
)


class AccessRefused(InputError):
    """The server refused an action to this login: names the role that may do it.

    An ``InputError``, so that every screen that shows a refused save shows this one
    in the same line; the command line exits 2 with it."""

    def __init__(self, message: str, login: str | None = None):
        self.message = message
        super().__init__([Problem("login", login, message)])

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------- refusals


_DENIED = re.compile(r'permission denied for (?:table|relation|sequence) "?([\w.]+)"?')
_RLS = re.compile(r'row-level security policy for table "?(\w+)"?')
_VERB = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|TRUNCATE|ALTER|DROP|CREATE|WITH)\b", re.IGNORECASE)


def roles_allowed(table: str, verb: str) -> list[str]:
    """The group roles whose rights include ``verb`` on ``table``.  For reading, a grant of
    some columns only (the audit chain head's) does not count; for changing, the columns
    granted are the ones devicelog changes (``device.status``)."""
    verb = verb.upper()
    whole = re.compile(rf"\b{verb}\b(?!\s*\()" if verb == "SELECT" else rf"\b{verb}\b")
    return [role for role, rights in RIGHTS.items() if whole.search(rights.get(table, ""))]


def refusal(exc: BaseException) -> AccessRefused | None:
    """The server's refusal (SQLSTATE 42501) as one line naming the role needed; None
    for any other error.  Reads the table from the message and the verb from the statement."""
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    message = str(orig).splitlines()[0] if str(orig) else ""
    if state != "42501" and "permission denied" not in message and "row-level security" not in message:
        return None
    if "audit entry is signed" in message:
        return AccessRefused(message.removeprefix("devicelog: "))
    if (m := _RLS.search(message)) and m.group(1) == "event":
        return AccessRefused(f"refused by the server: amending or voiding an entry, or overriding a soft drug limit, "
                             f"needs the role {CLINICIAN}")
    statement = getattr(exc, "statement", "") or ""
    verb = (_VERB.match(statement).group(1).upper() if _VERB.match(statement) else "SELECT")
    verb = "SELECT" if verb == "WITH" else verb
    m = _DENIED.search(message)
    table = m.group(1).split(".")[-1] if m else ""
    if table.endswith("_id_seq"):
        table, verb = table.removesuffix("_id_seq").removesuffix("_patient"), "INSERT"
    allowed = roles_allowed(table, verb) if table else []
    what = {"SELECT": "reading", "INSERT": "writing", "UPDATE": "changing", "DELETE": "deleting"}.get(verb, verb.lower())
    if allowed:
        needs = " or ".join(allowed)
        return AccessRefused(f"refused by the server: {what} {table} needs the role {needs} (ask your devicelog admin)")
    where = f" on {table}" if table else ""
    return AccessRefused(
        f"refused by the server: {what}{where} is not granted to any devicelog role "
        f"(the table owner {OWNER} only: ask the database owner)"
    )


def holds_clinician_rights(conn) -> bool:
    """Whether this login may do what only ``devicelog_clinician`` may (amend, void,
    override a soft drug limit): always on SQLite; on a server set up by ``admin
    setup`` (row-level security on ``event``), a clinician, the owner role's members
    and superusers."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text(
        "SELECT CASE WHEN NOT c.relrowsecurity OR r.rolsuper OR r.rolbypassrls THEN true "
        "ELSE pg_has_role(session_user, c.relowner, 'USAGE') OR pg_has_role(session_user, :clinician, 'USAGE') END "
        "FROM pg_class c, pg_roles r WHERE c.oid = 'event'::regclass AND r.rolname = session_user"
    ), {"clinician": CLINICIAN}).scalar())


# --------------------------------------------------------------------- setup


def _quote(conn, name: str) -> str:
    return conn.execute(text("SELECT quote_ident(:n)"), {"n": name}).scalar()


def _create_roles(engine) -> None:
    """The owner and group roles, once per server (they are cluster-wide); two setups at
    once on two databases of one server are fine (a role made meanwhile counts as made)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for role in (OWNER, *GROUPS):
            inherit = "NOINHERIT" if role == ADMIN else "INHERIT"
            conn.execute(
                text(
                    f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
                    f"CREATE ROLE {role} NOLOGIN {inherit}; END IF; "
                    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                )
            )
        # The admin group grants the others: ADMIN OPTION on each, and (NOINHERIT) none of their rights.
        for role in (NURSE, CLINICIAN, SCHEDULER, AUDITOR, ADMIN):
            held = conn.execute(
                text(
                    "SELECT admin_option FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                    "JOIN pg_roles a ON a.oid = m.member WHERE r.rolname = :r AND a.rolname = :a"
                ),
                {"r": role, "a": ADMIN},
            ).scalar()
            if role != ADMIN and not held:
                _retrying(conn, f"GRANT {role} TO {ADMIN} WITH ADMIN OPTION")
        superuser = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")).scalar()
        if not superuser:  # the database owner keeps running upgrades: it may act as the owner role
            _retrying(conn, f"GRANT {OWNER} TO {_quote(conn, conn.execute(text('SELECT session_user')).scalar())}")


def _retrying(conn, sql: str, tries: int = 3) -> None:
    from sqlalchemy.exc import DBAPIError

    for attempt in range(tries):
        try:
            conn.execute(text(sql))
            return
        except DBAPIError as exc:  # "tuple concurrently updated": another setup granted the same
            if attempt == tries - 1 or "concurrently" not in str(exc):
                raise


@dataclass
class SetupReport:
    tables: int
    roles: list[str]


def require_createrole(engine) -> None:
    """``AccessRefused`` unless this login may create roles (the database owner's, for setup)."""
    with engine.connect() as conn:
        may = conn.execute(text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = session_user")).scalar()
        who = conn.execute(text("SELECT session_user")).scalar()
    if not may:
        raise AccessRefused(
            f"admin setup needs a login that may create roles (CREATEROLE); {who!r} may not: "
            "run it as the database owner, e.g. `createuser --createrole clinic_owner`",
            who,
        )


def setup(engine) -> SetupReport:
    """Create the roles and hand the schema to ``devicelog_owner``; grant :data:`RIGHTS`.

    Run by the database owner (or a superuser); the database must be prepared
    (``schema.prepare``) first.  Raises ``AccessRefused`` when this login may not create roles."""
    require_createrole(engine)
    _create_roles(engine)
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        tables = [r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY 1"), {"s": schema})]
        sequences = [r[0] for r in conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s ORDER BY 1"), {"s": schema})]
        functions = [
            r[0]
            for r in conn.execute(
                text("SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = CAST(:s AS regnamespace) AND p.proname LIKE 'devicelog%'"),
                {"s": schema},
            )
        ]
        conn.execute(text(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC"))
        # The new owner of a table must be able to create in its schema (ALTER ... OWNER TO).
        conn.execute(text(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {OWNER}"))
        conn.execute(
            text(f"CREATE OR REPLACE FUNCTION devicelog_audit_author() RETURNS trigger LANGUAGE plpgsql AS $${_AUTHOR_CHECK_BODY}$$")
        )
        conn.execute(text("DROP TRIGGER IF EXISTS audit_author_is_login ON audit"))
        conn.execute(text("CREATE TRIGGER audit_author_is_login BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION devicelog_audit_author()"))
        functions.append("devicelog_audit_author()")
        for t in tables:
            conn.execute(text(f"ALTER TABLE {t} OWNER TO {OWNER}"))
            conn.execute(text(f"REVOKE ALL ON {t} FROM PUBLIC"))
            for role in GROUPS:
                conn.execute(text(f"REVOKE ALL ON {t} FROM {role}"))
        for s in sequences:
            conn.execute(text(f"ALTER SEQUENCE {s} OWNER TO {OWNER}"))
            conn.execute(text(f"REVOKE ALL ON SEQUENCE {s} FROM PUBLIC"))
        for f in sorted(set(functions)):
            conn.execute(text(f"ALTER FUNCTION {f} OWNER TO {OWNER}"))
        for role, rights in RIGHTS.items():
            for t, privileges in rights.items():
                if t in tables:
                    conn.execute(text(f"GRANT {privileges} ON {t} TO {role}"))
                    seq = f"{t}_id_seq" if f"{t}_id_seq" in sequences else f"{t}_patient_id_seq"
                    if "INSERT" in privileges and seq in sequences:
                        conn.execute(text(f"GRANT USAGE ON SEQUENCE {seq} TO {role}"))
        conn.execute(text("ALTER TABLE event ENABLE ROW LEVEL SECURITY"))
        for name, command, roles, condition in EVENT_POLICIES:
            conn.execute(text(f"DROP POLICY IF EXISTS {name} ON event"))
            conn.execute(text(f"CREATE POLICY {name} ON event FOR {command} TO {roles} {condition}"))
    return SetupReport(len(tables), [OWNER, *GROUPS])


# --------------------------------------------------------------------- granting


def group_role(name: str) -> str:
    """``nurse`` or ``devicelog_nurse`` → ``devicelog_nurse``; ValueError naming the choices."""
    full = name if name.startswith("devicelog_") else f"devicelog_{name}"
    if full not in GROUPS:
        choices = ", ".join(g.removeprefix("devicelog_") for g in GROUPS)
        raise ValueError(f"role {name!r} is not a devicelog role (one of: {choices})")
    return full


def _login_exists(conn, login: str) -> bool:
    return bool(conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n AND rolcanlogin"), {"n": login}).scalar())


def grant(engine, login: str, role: str) -> str:
    """Give ``login`` the group role; returns what was done, in words."""
    full = group_role(role)
    with engine.begin() as conn:
        if not _login_exists(conn, login):
            raise ValueError(f"login {login!r} does not exist on this server: create it first (createuser {login})")
        conn.execute(text(f"GRANT {full} TO {_quote(conn, login)}"))
    return f"{login} now holds {full}"


def revoke(engine, login: str, role: str) -> str:
    """Take the group role from ``login``; their earlier entries keep their name."""
    full = group_role(role)
    with engine.begin() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login}).scalar():
            raise ValueError(f"login {login!r} does not exist on this server")
        conn.execute(text(f"REVOKE {full} FROM {_quote(conn, login)}"))
    return f"{login} no longer holds {full} (their entries keep their name)"


def who(engine) -> list[tuple[str, str]]:
    """(login, group role) for every login holding a devicelog role, by login."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT m.rolname, r.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid "
                "JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = ANY(:groups) AND m.rolcanlogin "
                "ORDER BY m.rolname, r.rolname"
            ),
            {"groups": list(GROUPS)},
        ).all()
    return [(a, b) for a, b in rows]
