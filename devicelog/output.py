"""Every file devicelog writes with patient data goes through here (issue 15 §5, issue 19 §3).

Exports, due lists in every format, histories, FHIR Bundles, backups and the TUI's
printed list are written by :func:`private_file` (or :func:`private_path` for a writer
that needs a file name, SQLite's backup).  Each:

- checks the target first: a folder, a missing folder, a device (``/dev/full``), a
  pipe or a symbolic link is refused with one line naming the path
  (:class:`OutputError`; the commands exit 2) before any work is written;
- writes into a fresh partial file beside the target, made with a unique name,
  ``O_EXCL`` and mode 0600 (``tempfile.mkstemp``): never through a planted symlink,
  never shared by two commands writing the same path at once, readable by its owner
  only like the database itself;
- flushes and fsyncs it, then renames it over the target (``os.replace``): a reader
  sees the old file or the whole new one, never half of one, and the target is
  replaced only when it does not exist or is a regular file;
- removes the partial file on any error (disk full, read-only place, a refused record)
  and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator


class OutputError(RuntimeError):
    """The output file cannot be written there: one line naming the path and why.
    Nothing was written (no partial file is left)."""


def check_target(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path` when a file may be written there; else OutputError."""
    target = Path(path)
    if not str(path).strip():
        raise OutputError("the output file name is empty")
    try:
        found = os.lstat(target)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    if found is not None:
        if stat.S_ISDIR(found.st_mode):
            raise OutputError(f"cannot write {path}: it is a folder; give a file name inside it")
        if stat.S_ISLNK(found.st_mode):
            raise OutputError(f"cannot write {path}: it is a symbolic link; give the file's real path (a link is never written through)")
        if not stat.S_ISREG(found.st_mode):
            raise OutputError(
                f"cannot write {path}: it is not a regular file (a device, pipe or socket); "
                "leave out -o to write to standard output"
            )
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")
    return target


@contextlib.contextmanager
def private_file(path: str | os.PathLike, *, binary: bool = False) -> Iterator[IO]:
    """An open file that becomes ``path`` when the block ends without error (see the module).

    Text is UTF-8 with ``\\n`` line ends as written (``newline=""``)."""
    with _replacing(path) as (fd, _):
        try:
            fh = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def private_path(path: str | os.PathLike) -> Iterator[Path]:
    """The name of a new empty 0600 partial file beside ``path`` for a writer that opens
    files by name; it becomes ``path`` when the block ends without error."""
    with _replacing(path) as (fd, partial):
        os.close(fd)
        yield partial
        fd = os.open(partial, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _replacing(path: str | os.PathLike) -> Iterator[tuple[int, Path]]:
    target = check_target(path)
    try:
        # A unique name, O_CREAT | O_EXCL (never an existing file or a link), mode 0600.
        fd, name = tempfile.mkstemp(prefix=f".{target.name[:80]}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    partial = Path(name)
    try:
        yield fd, partial
        check_target(path)  # again: a folder or a device may have been put there meanwhile
        os.replace(partial, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {_reason(exc)}; nothing was written") from None
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """The rename itself survives a power cut once the folder is synced (where it can be)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
