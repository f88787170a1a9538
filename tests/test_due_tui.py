"""The due view's print action writes the PDF, prints it when set up, and says where it went."""

from __future__ import annotations

import shlex
import sys

from pypdf import PdfReader

from devicelog.settings import Settings
from tests.conftest import TODAY
from tests.test_due_clinic import clinic  # noqa: F401  (fixture)

SIZE = (120, 36)


async def settle(pilot):
    for _ in range(5):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_print_key_writes_the_pdf_and_sends_it_to_the_print_command(clinic, tmp_path, monkeypatch):  # noqa: F811
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.due import DueScreen

    monkeypatch.chdir(tmp_path)
    log = tmp_path / "printed.txt"
    script = tmp_path / "fake_lp.py"
    script.write_text(f"import sys, pathlib\npathlib.Path({str(log)!r}).write_text(sys.argv[-1])\n")
    settings = Settings(print_command=f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    app = make_app(clinic, settings, TODAY, "nurse")
    messages = []
    monkeypatch.setattr(app, "notify", lambda message, **kw: messages.append(message))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        assert isinstance(app.screen, DueScreen)
        await pilot.press("p")
        await settle(pilot)
    pdf = tmp_path / "due-2026-11-23-30d.pdf"  # the view opens on "next 30 days"
    assert pdf.exists() and log.read_text() == str(pdf)
    assert any(m.startswith(f"Due list saved to {pdf}; sent to the printer") for m in messages), messages
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "Wound check day" in text and "overdue, and due 2026-11-23 to 2026-12-23" in text


async def test_a_printed_due_list_is_a_logged_read(clinic, tmp_path, monkeypatch):  # noqa: F811
    """Issue 15: the printed list holds every listed patient's name and MRN."""
    import json

    from sqlalchemy import text

    from devicelog.store import audit
    from devicelog.tui.app import make_app

    monkeypatch.chdir(tmp_path)
    app = make_app(clinic, Settings(), TODAY, "rn.ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
    with clinic.connect() as conn:
        author, action, payload = conn.execute(text("SELECT author, action, payload FROM audit ORDER BY id DESC LIMIT 1")).one()
    assert (author, action) == ("rn.ann", "read: due list as of 2026-11-23 (pdf)")
    pdf = tmp_path / "due-2026-11-23-30d.pdf"
    assert json.loads(payload)["read"]["scope"] == f"every patient on the due list as of 2026-11-23, written to {pdf}"
    assert audit.verify(clinic).problems == []
