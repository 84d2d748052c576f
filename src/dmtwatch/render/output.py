"""Output files written whole or not at all, and CSV cells a spreadsheet will not run.

`atomic_file` writes into a temporary file in the target's own folder (so the rename
stays on one file system), flushes it to disk, then `os.replace`s it over the target: a
reader sees the previous file or the new one, never half of one; a failure (a renderer
raising, a full disk) removes the temporary file and leaves the previous file as it was.
Missing folders are created; when that or the write is impossible, `OutputError` says
which path and why, in one line (`OutputPathError`, a usage error, when the path itself
cannot be used).

`safe_cell` follows the OWASP CSV-injection guidance: a *text* cell starting with
= + - @, a tab or a carriage return (after any leading blanks) gets a leading single
quote, so a spreadsheet shows it as text instead of evaluating it. Numbers written as
numbers (counts, PRR, a negative IC025) are left alone: only `str` values are changed,
so an id such as "-5" (text in the contract) reads back as "'-5".
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from dmtwatch.errors import OutputError, OutputPathError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would evaluate, quoted; anything else as it is."""
    if isinstance(value, str) and value.lstrip(" \n").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def ensure_folder(folder: Path, *, for_path: Path | None = None) -> None:
    """Create `folder` (and its parents) unless it exists; OutputError saying why not."""
    named = for_path if for_path is not None else folder
    if folder.is_dir():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = _why(exc)
        for parent in (folder, *folder.parents):
            if parent.exists():
                if not parent.is_dir():
                    why = f"{parent} is not a folder"
                break
        raise OutputPathError(
            f"cannot write {named}: cannot create folder {folder}: {why}"
        ) from exc


def _new_file_mode(path: Path) -> int:
    """The previous file's permissions, or what a plain open() would give (0666 - umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def _temporary_beside(path: Path, suffix: str) -> Iterator[tuple[int, Path]]:
    path = Path(path)
    folder = path.parent
    ensure_folder(folder, for_path=path)
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {_why(exc)}") from exc
    tmp = Path(name)
    try:
        yield fd, tmp
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {_why(exc)}; the previous file, if any, is unchanged"
        ) from exc
    finally:
        with suppress(OSError):
            tmp.unlink()


@contextmanager
def atomic_file(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A file object to write `path` through: renamed into place only if the block succeeds."""
    encoding = None if binary else "utf-8"
    with (
        _temporary_beside(path, ".tmp") as (fd, _tmp),
        os.fdopen(fd, "wb" if binary else "w", encoding=encoding) as f,
    ):
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_file(path) as f:
        f.write(text)


def write_via(path: Path, writer: Callable[[Path], None]) -> None:
    """Atomically write `path` with a writer that only takes a path (e.g. a PDF library).

    The temporary file keeps `path`'s suffix, for writers that choose a format by it.
    """
    path = Path(path)
    with _temporary_beside(path, f".tmp{path.suffix}") as (fd, tmp):
        os.close(fd)
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
