"""Output files with patient data (issue 19 §3, issue 15 §5): one way to write them
(``devicelog.output``), used by every command that writes one.

Each output is private (0600), written into a fresh partial file with a unique name
(never through a planted symlink, never shared by two writers), fsynced, and renamed
over the target only when that is absent or a regular file.  A folder, a missing
folder, a device or a read-only place is refused with one line naming the path,
exit 2, and no partial file left behind.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, TODAY
from tests.safety_data import make_clinic
from tests.test_cli_databases import ROOT, _without_root_override, one_line, run

#: Every command that writes a file with patient data, with its arguments (-o last).
WRITERS = {
    "export": ["export", "-o"],
    "due text": ["due", "--as-of", "2026-11-23", "-o"],
    "due csv": ["due", "--as-of", "2026-11-23", "--format", "csv", "-o"],
    "due json": ["due", "--as-of", "2026-11-23", "--format", "json", "-o"],
    "due json redacted": ["due", "--as-of", "2026-11-23", "--format", "json", "--redact", "-o"],
    "due html": ["due", "--as-of", "2026-11-23", "--format", "html", "-o"],
    "due ics": ["due", "--as-of", "2026-11-23", "--format", "ics", "-o"],
    "due pdf": ["due", "--as-of", "2026-11-23", "--format", "pdf", "-o"],
    "history text": ["history", "NGP100", "--as-of", "2026-11-23", "-o"],
    "history json": ["history", "NGP100", "--as-of", "2026-11-23", "--format", "json", "-o"],
    "history pdf": ["history", "NGP100", "--as-of", "2026-11-23", "--format", "pdf", "-o"],
    "fhir": ["fhir", "-o"],
    "backup": ["backup"],
}

WRITER_NAMES = list(WRITERS)


def writer(name: str):
    if name == "backup" and PG_ADMIN_URL:
        pytest.skip("backup copies SQLite files (PostgreSQL: pg_dump)")
    return WRITERS[name]


@pytest.fixture
def clinic(engine):
    make_clinic(engine)
    return engine.url.render_as_string(hide_password=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


@pytest.mark.parametrize("name", WRITER_NAMES)
def test_every_output_is_private_and_replaces_only_when_whole(name, clinic, tmp_path, capsys):
    """Outputs were 0644; exporting onto an existing 0600 file must leave a 0600 file, and a
    0644 one becomes 0600 as well."""
    argv = writer(name)
    target = tmp_path / "out" / "file.out"
    target.parent.mkdir()
    old = os.umask(0o022)
    try:
        code, _, err = run(["--db", clinic, *argv, str(target)], capsys)
        assert code == 0, err
        assert mode(target) == 0o600 and target.stat().st_size > 0
        if name != "backup":  # a backup never overwrites
            first = target.read_bytes()
            target.chmod(0o644)
            assert run(["--db", clinic, *argv, str(target)], capsys)[0] == 0
            assert mode(target) == 0o600
            if name not in ("due pdf", "history pdf", "due ics", "fhir"):  # these carry the time they were made
                assert target.read_bytes() == first
    finally:
        os.umask(old)
    assert leftovers(target.parent) == []


def _full_device(tmp_path: Path) -> Path:
    """A device that answers every write with "no space left": a node of its own (as root,
    so a test never risks the machine's /dev/full) or /dev/full itself."""
    node = tmp_path / "full"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        return node
    except (PermissionError, OSError):
        if Path("/dev/full").exists():
            return Path("/dev/full")
    pytest.skip("no full device here")


@pytest.mark.parametrize("name", WRITER_NAMES)
@pytest.mark.parametrize("bad", ["a folder", "a missing folder", "a full device", "a symbolic link"])
def test_a_bad_output_path_is_one_line_and_leaves_nothing(bad, name, clinic, tmp_path, capsys):
    """Each gave a traceback; a folder target left the whole export as ``DIR.partial``; as
    root, ``-o /dev/full`` replaced the device node.  Now one line naming the path, exit 2,
    nothing written anywhere, the target as it was."""
    argv = writer(name)
    work = tmp_path / "work"
    work.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    if bad == "a folder":
        target = work / "folder"
        target.mkdir()
    elif bad == "a missing folder":
        target = work / "no-such-folder" / "out.file"
    elif bad == "a full device":
        target = _full_device(tmp_path)
    else:
        target = work / "link.out"
        target.symlink_to(victim)
    code, _, err = run(["--db", clinic, *argv, str(target)], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"devicelog: cannot write {target}: ")
    assert leftovers(work) == [] and leftovers(tmp_path) == []
    assert victim.read_text() == "not yours\n"
    if bad == "a folder":
        assert list(target.iterdir()) == []
    elif bad == "a missing folder":
        assert not target.parent.exists()
    elif bad == "a full device":
        assert stat.S_ISCHR(os.lstat(target).st_mode)
    else:
        assert target.is_symlink()


@pytest.mark.parametrize("name", WRITER_NAMES)
def test_a_planted_partial_file_symlink_is_never_written_through(name, clinic, tmp_path, capsys):
    """A symlink planted at ``clinic.json.partial`` made an export write the whole clinic
    into the file it pointed at.  The partial file is now made fresh with a unique name."""
    argv = writer(name)
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    target = tmp_path / "clinic.out"
    (tmp_path / "clinic.out.partial").symlink_to(victim)
    assert run(["--db", clinic, *argv, str(target)], capsys)[0] == 0
    assert victim.read_text() == "not yours\n"
    assert (tmp_path / "clinic.out.partial").is_symlink()
    assert mode(target) == 0o600


_READ_ONLY_PLACE_SCRIPT = """
import json, sys
from devicelog.cli import main
db, target, writers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
codes = {name: main(["--db", db, *argv, target]) for name, argv in writers.items()}
print("\\nCODES=" + json.dumps(codes))
"""


def test_a_read_only_place_is_one_line_per_writer(clinic, tmp_path):
    """A folder the user may not write: each writer says so in one line and exits 2."""
    prefix = _without_root_override()
    writers = {k: v for k, v in WRITERS.items() if not (k == "backup" and PG_ADMIN_URL)}
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    target = folder / "out.file"
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", _READ_ONLY_PLACE_SCRIPT, clinic, str(target), json.dumps(writers)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        folder.chmod(0o755)
    assert "Traceback" not in done.stderr, done.stderr
    codes = json.loads(done.stdout.split("CODES=")[1].splitlines()[0])
    assert codes == {name: 2 for name in writers}, done.stderr
    refusals = [line for line in done.stderr.splitlines() if line.startswith("devicelog: cannot write")]
    assert refusals == [f"devicelog: cannot write {target}: Permission denied"] * len(writers), done.stderr
    assert list(folder.iterdir()) == []


# --------------------------------------------------------------------------- the shared function itself


def test_two_writers_of_one_path_never_share_a_partial_file(tmp_path):
    """Two commands writing the same -o at once each have their own partial file; the one
    that finishes last wins whole, and nothing is left behind."""
    from devicelog.output import private_file

    target = tmp_path / "due.csv"
    with private_file(target) as first:
        first.write("first\n")
        with private_file(target) as second:
            second.write("second\n")
            assert len(leftovers(tmp_path)) == 2
        assert target.read_text() == "second\n"
        first.write("first, more\n")
    assert target.read_text() == "first\nfirst, more\n"
    assert leftovers(tmp_path) == [] and mode(target) == 0o600


def test_a_write_error_removes_the_partial_file_and_keeps_the_target(tmp_path):
    """Disk full part way (ENOSPC): one line naming the path, the old file kept whole."""
    from devicelog.output import OutputError, private_file

    target = tmp_path / "clinic.json"
    target.write_text("yesterday's export\n")
    with pytest.raises(OutputError) as info:
        with private_file(target) as fh:
            fh.write("half of it")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(info.value) == f"cannot write {target}: No space left on device; nothing was written"
    assert target.read_text() == "yesterday's export\n" and leftovers(tmp_path) == []


def test_an_error_of_the_writer_leaves_the_target_as_it_was(tmp_path):
    from devicelog.output import private_path

    target = tmp_path / "b.db"
    with pytest.raises(ValueError):
        with private_path(target) as partial:
            assert partial.parent == tmp_path and mode(partial) == 0o600 and partial.stat().st_size == 0
            raise ValueError("refused")
    assert not target.exists() and leftovers(tmp_path) == []


def test_the_tui_printed_due_list_is_private(engine, tmp_path):
    from devicelog.reports.due_pdf import print_due_pdf
    from devicelog.settings import Settings

    make_clinic(engine)
    old = os.umask(0o022)
    try:
        path, message = print_due_pdf(engine, Settings(), TODAY, 30, (), tmp_path)
    finally:
        os.umask(old)
    assert path.read_bytes().startswith(b"%PDF") and mode(path) == 0o600
    assert message == f"Due list saved to {path}" and leftovers(tmp_path) == []


def test_every_writer_in_the_code_goes_through_devicelog_output():
    """No command or report opens an output file itself: each file with patient data is
    written by devicelog.output (the grep that found them: open(..., "w"/"wb"), os.replace,
    ``.partial``)."""
    import re

    allowed = {"devicelog/output.py", "devicelog/schemas.py"}  # schemas.py writes the JSON Schemas (no patient data)
    found = []
    for path in sorted((ROOT / "devicelog").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (r"open\([^)]*[\"']w b?[\"']".replace(" ", ""), r"os\.replace\(", r"\.partial[\"']", r"\.write_(text|bytes)\("):
            found += [f"{rel}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert found == []
