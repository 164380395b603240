"""Checkpoint files: scoped by stream ARN, written atomically, and an unreadable one never kills its runner."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from runners.checkpoint import Checkpoint

ARN_A = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-01-01T00:00:00.000"
ARN_B = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-01-02T00:00:00.000"


def saved(path: Path, scope: str = ARN_A) -> Checkpoint:
    ckpt = Checkpoint(path, scope=scope)
    ckpt.advance("shard-1", "100")
    ckpt.finish("shard-0")
    ckpt.save()
    return ckpt


@pytest.mark.parametrize("body", [
    b"",  # empty: a crash before the first byte reached the disk
    b'{"positions": {"shard-1": "10',  # torn: half a write
    b"\x00\x00\x00\x00",  # zeroed blocks after a power cut
    b"[1, 2, 3]",  # JSON, but not a checkpoint
    b'{"positions": {"shard-1": 10}, "finished": []}',  # a position that is not a sequence number
    b'{"version": 2, "scopes": {"arn": {"positions": [], "finished": []}}}',
])
def test_an_unreadable_checkpoint_is_moved_aside_and_read_from_the_oldest_record(
        tmp_path: Path, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pipe.checkpoint.json"
    path.write_bytes(body)
    with caplog.at_level(logging.WARNING):
        ckpt = Checkpoint(path, scope=ARN_A)
    assert ckpt.positions == {} and ckpt.finished == set()
    assert ckpt.recovered  # readers must start from TRIM_HORIZON: duplicates possible, gaps not
    (aside,) = tmp_path.glob("pipe.checkpoint.json.corrupt-*")
    assert aside.read_bytes() == body  # kept for a human, byte for byte
    assert not path.exists()
    (line,) = [r.getMessage() for r in caplog.records]
    assert str(aside) in line and "TRIM_HORIZON" in line
    ckpt.advance("shard-1", "5")
    ckpt.save()
    assert Checkpoint(path, scope=ARN_A).get("shard-1") == "5"
    assert not Checkpoint(path, scope=ARN_A).recovered


def test_two_corrupt_files_in_a_row_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    for _ in range(2):
        path.write_text("{")
        Checkpoint(path)
    assert len(list(tmp_path.glob("c.json.corrupt-*"))) == 2


def test_positions_are_scoped_by_stream_so_a_recreated_stream_with_reused_shard_ids_starts_fresh(
        tmp_path: Path) -> None:
    path = tmp_path / "pipe.checkpoint.json"
    saved(path, ARN_A)
    old = Checkpoint(path, scope=ARN_A)
    assert (old.get("shard-1"), old.finished) == ("100", {"shard-0"})
    new = Checkpoint(path, scope=ARN_B)  # the table was deleted and created again: same shard ids, new label
    assert (new.get("shard-1"), new.finished, new.positions) == (None, set(), {})
    assert not new.recovered
    new.advance("shard-1", "7")
    new.save()
    assert Checkpoint(path, scope=ARN_A).get("shard-1") == "100"  # the other stream's state is kept
    assert Checkpoint(path, scope=ARN_B).get("shard-1") == "7"


def test_an_old_checkpoint_keyed_by_shard_only_loads_as_the_current_stream(tmp_path: Path) -> None:
    path = tmp_path / "pipe.checkpoint.json"
    path.write_text(json.dumps({"positions": {"shard-1": "42"}, "finished": ["shard-0"]}))
    ckpt = Checkpoint(path, scope=ARN_A)
    assert (ckpt.get("shard-1"), ckpt.finished, ckpt.recovered) == ("42", {"shard-0"}, False)
    ckpt.save()
    assert Checkpoint(path, scope=ARN_A).get("shard-1") == "42"
    assert Checkpoint(path, scope=ARN_B).get("shard-1") is None
    assert Checkpoint(path).get("shard-1") is None  # the default scope is a scope like any other


def test_the_unscoped_api_the_firehose_runner_uses_still_works(tmp_path: Path) -> None:
    path = tmp_path / "firehose.checkpoint.json"
    ckpt = Checkpoint(path)
    assert ckpt.get("s") is None and not ckpt.recovered
    ckpt.advance("s", "9")
    ckpt.save()
    again = Checkpoint(path)
    assert again.get("s") == "9" and again.positions == {"s": "9"}


def test_two_runners_saving_the_same_checkpoint_at_once_never_tear_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runner B saves while runner A is between writing its temp file and renaming it."""
    path = tmp_path / "pipe.checkpoint.json"
    a, b = Checkpoint(path, scope=ARN_A), Checkpoint(path, scope=ARN_A)
    a.advance("shard-1", "1" * 2000)
    b.advance("shard-1", "2")
    real_fsync = os.fsync
    interleaved: list[bool] = []

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if not interleaved and stat.S_ISREG(os.fstat(fd).st_mode):
            interleaved.append(True)
            b.save()  # B runs to completion inside A's save

    monkeypatch.setattr(os, "fsync", fsync)
    a.save()
    assert interleaved
    assert Checkpoint(path, scope=ARN_A).get("shard-1") == "1" * 2000  # A renamed last: its file, whole
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_save_syncs_the_file_and_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    saved(tmp_path / "sub" / "c.json")
    assert synced == ["file", "dir"]  # the rename is durable only once the directory is synced
