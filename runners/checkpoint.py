"""Per-shard checkpoints on disk: scoped by stream, written atomically, and never fatal to read.

A checkpoint is the sequence number of the last record whose effect is durable downstream;
a restart resumes AFTER it (at-least-once, like the managed services).

Scope. Shard ids are not unique across a stream's lifetimes: a DynamoDB table deleted and
created again gets a new stream whose ARN carries a new label, but the emulator hands out the
same shard ids, so positions keyed by shard alone would resume the new stream from the old
one's sequence numbers (or skip a shard the old stream had finished). Positions are therefore
kept per (scope, shard), the scope being the stream's ARN. The file:

    {"version": 2, "scopes": {"<stream arn>": {"positions": {"<shard>": "<seq>"}, "finished": ["<shard>"]}}}

A file of the first format ({"positions": ..., "finished": ...}, keyed by shard only) still
loads, as the current scope, so existing state directories keep working.

Writes: a temp file of its own in the same directory (two runners of one kind never share one),
fsync, rename over the checkpoint, fsync the directory (the rename itself must survive a crash).

Reads: a file that cannot be read as a checkpoint (empty, torn, zeroed, not JSON, not this
shape) is moved aside to `<name>.corrupt-<UTC time>` with one warning, and the scope starts
afresh with `recovered` set: the reader then starts every shard from TRIM_HORIZON, which can
only duplicate records (downstream collapses duplicates), never skip one.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.files import replace_file

log = logging.getLogger("runners")

FORMAT_VERSION = 2


class CorruptCheckpoint(ValueError):
    """The file exists but is not a checkpoint this module wrote."""


def _scope_state(data: Any) -> tuple[dict[str, str], set[str]]:
    if not isinstance(data, dict):
        raise CorruptCheckpoint("a scope is not a JSON object")
    positions, finished = data.get("positions", {}), data.get("finished", [])
    if not isinstance(positions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in positions.items()):
        raise CorruptCheckpoint("positions are not shard -> sequence number strings")
    if not isinstance(finished, list) or not all(isinstance(s, str) for s in finished):
        raise CorruptCheckpoint("finished is not a list of shard ids")
    return dict(positions), set(finished)


def parse(raw: bytes, scope: str) -> dict[str, tuple[dict[str, str], set[str]]]:
    """scope -> (positions, finished) from a file's bytes; a first-format file becomes `scope`."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpoint(f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CorruptCheckpoint("not a JSON object")
    if "version" not in data:  # the first format: keyed by shard only
        return {scope: _scope_state(data)}
    scopes = data.get("scopes")
    if data["version"] != FORMAT_VERSION or not isinstance(scopes, dict):
        raise CorruptCheckpoint(f"unknown checkpoint version {data['version']!r}")
    return {str(name): _scope_state(state) for name, state in scopes.items()}


class Checkpoint:
    """Positions and finished shards of one stream (`scope`), in a file that may hold other streams too."""

    def __init__(self, path: Path, *, scope: str = "") -> None:
        self.path = path
        self.scope = scope
        self.positions: dict[str, str] = {}
        self.finished: set[str] = set()  # closed shards read to their end
        self.recovered = False  # the file was unreadable: read every shard from its oldest record
        self._others: dict[str, tuple[dict[str, str], set[str]]] = {}
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            scopes = parse(raw, scope)
        except CorruptCheckpoint as exc:
            self._set_aside(exc)
            return
        self.positions, self.finished = scopes.pop(scope, ({}, set()))
        self._others = scopes

    def _set_aside(self, reason: CorruptCheckpoint) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 0
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        os.replace(self.path, aside)
        self.recovered = True
        log.warning("checkpoint %s is unreadable (%s): kept as %s; reading every shard of %s again from "
                    "TRIM_HORIZON (records may repeat, none is skipped)",
                    self.path, reason, aside, self.scope or "the stream")

    @property
    def started(self) -> bool:
        """True once this stream has any saved state (or lost it): new shards then start at their oldest record."""
        return self.recovered or bool(self.positions or self.finished)

    def get(self, shard_id: str) -> str | None:
        return self.positions.get(shard_id)

    def advance(self, shard_id: str, sequence_number: str) -> None:
        self.positions[shard_id] = sequence_number

    def finish(self, shard_id: str) -> None:
        self.finished.add(shard_id)

    def body(self) -> dict[str, Any]:
        scopes = {**self._others, self.scope: (self.positions, self.finished)}
        return {"version": FORMAT_VERSION, "scopes": {
            name: {"positions": dict(positions), "finished": sorted(finished)}
            for name, (positions, finished) in sorted(scopes.items())}}

    def save(self) -> None:
        replace_file(self.path, json.dumps(self.body(), sort_keys=True), durable=True)
