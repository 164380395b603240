"""The benchmark's own emulator (never the user's `make up` one) and per-run pipeline settings.

The emulator binds to 127.0.0.1 on a free port with a temporary state directory, and is stopped
when the `with` block ends, whatever ends it (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from analytics.athena_api import free_stack_port as free_port  # importable from here, as before
from bootstrap import emulator
from common.config import Settings, load_settings, with_overrides


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so `finally` blocks stop what the benchmark started."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def own_emulator(keep_state: bool = False) -> Iterator[tuple[Settings, int]]:
    """(settings, emulator pid) for a fresh embedded MiniStack; stopped and cleaned up afterwards."""
    state_dir = Path(tempfile.mkdtemp(prefix="bench-state-"))
    settings = load_settings(env={}, target="embedded", port=free_port(), state_dir=state_dir)
    pid = emulator.start(settings)
    try:
        yield settings, pid
    finally:
        emulator.stop(settings)
        if not keep_state:
            shutil.rmtree(state_dir, ignore_errors=True)


def pipeline_settings(base: Settings, tag: str, *, buffer_interval_s: int, processor_interval_s: int = 0) -> Settings:
    """A whole pipeline with names of its own (tag: lowercase letters and digits) and its own state dir."""
    return with_overrides(
        base,
        state_dir=base.state_dir / f"pipeline-{tag}",
        project=f"bench-{tag}", table_name=f"bench_{tag}_orders", stream_name=f"bench-{tag}-cdc",
        lambda_name=f"bench-{tag}-transform", pipe_name=f"bench-{tag}-pipe", delivery_stream=f"bench-{tag}-firehose",
        glue_database=f"bench_{tag}_db", crawler_name=f"bench-{tag}-crawler", workgroup=f"bench-{tag}-wg",
        lake_bucket=f"bench-{tag}-lake", results_bucket=f"bench-{tag}-results",
        buffer_interval_s=buffer_interval_s, processor_interval_s=processor_interval_s,
    )
