"""The backfill's checkpoint: one JSON file per table in the state directory, rewritten atomically.

Written after every page (every segment's worker shares one file under a lock): a temp file in the
same directory, fsync, rename over the checkpoint, fsync the directory, so a SIGKILL leaves either the
old or the new file, never a torn one. A file that cannot be read is set aside (`.corrupt-<time>`)
with a warning, and the backfill starts a new snapshot: that can only write rows again, never skip one.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from backfill.core import Progress, Segment, Step, progress_from_json, progress_json
from common.config import Settings
from common.console import Console
from common.files import replace_file
from common.state_dir import backfill_checkpoint_file


def checkpoint_path(settings: Settings) -> Path:
    return backfill_checkpoint_file(settings.state_dir, settings.table_name)


class ProgressStore:
    """The saved Progress of one table, safe to update from several worker threads."""

    def __init__(self, path: Path, console: Console) -> None:
        self.path = path
        self.console = console
        self._lock = threading.Lock()
        self.progress = Progress(mode="", table="", segments=0)

    def load(self) -> Progress | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return progress_from_json(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}")
            os.replace(self.path, aside)
            self.console.warn(f"backfill checkpoint {self.path} is unreadable ({exc}); kept as {aside.name}, "
                              "starting a new snapshot")
            return None

    def begin(self, progress: Progress) -> None:
        """Hold `progress` as the run's state and save it."""
        with self._lock:
            self.progress = progress
            self._write(progress)

    def update_step(self, index: int, step: Step) -> Progress:
        with self._lock:
            self.progress = self.progress.with_step(index, step)
            self._write(self.progress)
            return self.progress

    def update_segment(self, step_index: int, segment_index: int, segment: Segment) -> None:
        """One segment moved on (a page written): saved before the worker reads its next page."""
        with self._lock:
            step = self.progress.steps[step_index].with_segment(segment_index, segment)
            self.progress = self.progress.with_step(step_index, step)
            self._write(self.progress)

    def finish_tombstones(self, count: int) -> None:
        """The snapshot's tombstones are all in the lake: the run is finished."""
        with self._lock:
            self.progress = replace(self.progress, tombstones_done=True, tombstones=count)
            self._write(self.progress)

    def _write(self, progress: Progress) -> None:
        replace_file(self.path, json.dumps(progress_json(progress), sort_keys=True), durable=True)
