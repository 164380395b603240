"""common/files.py: a replaced file is whole, whatever fails or runs beside the write."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from common.files import replace_file


def test_replace_writes_the_text_readable_by_others_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "status.json"
    replace_file(target, "first")
    replace_file(target, "second")
    assert target.read_text() == "second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temp(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "checkpoint.json"
    replace_file(target, "old")

    def broken_replace(src: str, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        replace_file(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


def test_durable_fsyncs_the_file_and_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    replace_file(tmp_path / "a", "x")
    assert synced == []
    replace_file(tmp_path / "b", "x", durable=True)
    assert synced == [False, True]  # the file, then the directory that holds the rename


def test_concurrent_writers_never_leave_a_mixed_file(tmp_path: Path) -> None:
    target = tmp_path / "spec.json"
    bodies = [str(n) * 50_000 for n in range(8)]
    threads = [threading.Thread(target=replace_file, args=(target, body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_text() in bodies
    assert [p.name for p in tmp_path.iterdir()] == ["spec.json"]
