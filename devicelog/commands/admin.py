"""``devicelog admin``: the roles of a PostgreSQL server (issue 15).

Examples::

    devicelog admin setup                      # once, as the database owner
    devicelog admin grant jdoe nurse           # jdoe's own login gets the nurse role
    devicelog admin revoke jdoe nurse          # jdoe left: their entries keep their name
    devicelog admin who                        # who holds which role

Logins themselves are the server's (``createuser jdoe``; ``pg_hba.conf`` says how they
authenticate); devicelog never sees a password.  See docs/deployment-postgresql.md.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("setup", help="create devicelog_owner and the group roles, hand the tables to the owner, grant the rights")
    for verb, help_text in (("grant", "give a login a devicelog role"), ("revoke", "take a devicelog role from a login")):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("login", metavar="LOGIN", help="the person's own server login")
        p.add_argument("role", metavar="ROLE", help="nurse, clinician, scheduler, auditor or admin")
    sub.add_parser("who", help="list who holds which devicelog role")


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog.identity import is_server
    from devicelog.store import access

    if not is_server(args.db):
        from devicelog.store.schema import open_database

        open_database(args.db, migrate=False).dispose()  # a missing or foreign file is named first (one line, exit 2)
        print("devicelog admin: roles are a database server's (PostgreSQL); a SQLite file belongs to its OS login", file=sys.stderr)
        return 2
    from devicelog.store.db import make_engine

    # setup hands over the tables, so they must be there and current (ctx.engine prepares
    # them); granting needs no table, and an admin may read none.
    engine = make_engine(args.db)
    try:
        if args.action == "setup":
            access.require_createrole(engine)  # before opening (preparing) the tables
            report = access.setup(ctx.engine)
            print(f"devicelog admin: {report.tables} tables now owned by {access.OWNER}; roles: {', '.join(report.roles)}")
            for role, may in access.GROUPS.items():
                print(f"  {role:<21} {may}")
        elif args.action == "grant":
            print(f"devicelog admin: {access.grant(engine, args.login, args.role)}")
        elif args.action == "revoke":
            print(f"devicelog admin: {access.revoke(engine, args.login, args.role)}")
        else:
            rows = access.who(engine)
            if not rows:
                print("no login holds a devicelog role yet (devicelog admin grant LOGIN ROLE)")
            for login, role in rows:
                print(f"{login:<24} {role}")
    except ValueError as exc:
        print(f"devicelog admin: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the server's refusal (not an admin): one line naming the role
        refused = access.refusal(exc)
        if refused is None:
            raise
        needs = "the database owner" if args.action == "setup" else f"the role {access.ADMIN} (or the database owner)"
        print(f"devicelog admin: {args.action} needs {needs}: {refused}", file=sys.stderr)
        return 2
    return 0
