"""Replacing a small file so that a reader, a crash or a second writer never sees half of it.

Checkpoints, status files, spec files and verify.json are read by other processes while they are
rewritten, and checkpoints must survive a power cut: each write goes to a temp file of its own in the
same directory (two writers never share one), is renamed over the target (atomic on POSIX), and with
`durable` the file and its directory are fsynced so the rename itself survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, *, durable: bool = False, mode: int = 0o644) -> None:
    """Write `text` to `path` atomically; `durable` also fsyncs the file and its directory."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes it private; `make status` and healthchecks read these files
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
