"""Per-shard checkpoints on disk, written atomically so a crash never leaves half a file.

A checkpoint is the sequence number of the last record whose effect is durable downstream;
a restart resumes AFTER it (at-least-once, like the managed services).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Checkpoint:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: dict[str, str] = {}
        self.finished: set[str] = set()  # closed shards read to their end
        if path.is_file():
            data = json.loads(path.read_text())
            self.positions = dict(data.get("positions", {}))
            self.finished = set(data.get("finished", []))

    def get(self, shard_id: str) -> str | None:
        return self.positions.get(shard_id)

    def advance(self, shard_id: str, sequence_number: str) -> None:
        self.positions[shard_id] = sequence_number

    def finish(self, shard_id: str) -> None:
        self.finished.add(shard_id)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body: dict[str, Any] = {"positions": self.positions, "finished": sorted(self.finished)}
        with tmp.open("w") as fh:
            json.dump(body, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
