"""Every path under the state directory (STATE_DIR, `.state/` in a clone): the one place that names them.

The bootstrap hands work to the runners through files here, and `make up`, `make down`, `make status`
and the dashboard find the processes and their progress here, so writer and reader must spell each
name the same way: they both ask this module. It names paths only; `common/process.py` owns what is
done with the pid and lock files.

    <state>/
      up.lock                       up_lock_file: held while `make up` / `make down` start or stop things
      emulator-<port>.pid, .log     emulator_pid_file, emulator_log_file: the embedded emulator
      emulator-data/ (s3/)          emulator_data_dir, emulator_s3_dir: what a persisted emulator keeps
      athena-<port>.pid, .log       athena_pid_file, athena_log_file: the local Athena endpoint
      verify.json                   verify_file: the last `make verify` verdict (the dashboard shows it)
      sql_history                   sql_history_file: the `make sql` prompt's history
      chaos/<run>/                  chaos_run_dir: a chaos drill's own throwaway state directory
      backfill/<table>.json         backfill_checkpoint_file: where `make backfill` resumes
      runners/                      runners_dir: one directory shared by the bootstrap and the runners
        <kind>.json                 spec_file: the Create* request the bootstrap hands a runner (SPEC_KINDS)
        <runner>.checkpoint.json    checkpoint_file: where a runner resumes
        <runner>.status.json        status_file, status_files: what `make status` shows
        <runner>.lock               runner_lock_file: held by the running runner for its whole life
        <runner>.log                runner_log_file: a background runner's output
        <runner>.pid                old_runner_pid_file: written by earlier versions, removed by `make down`

Functions of one runner's files take the runners' directory, as a runner is handed only that directory.
This module imports nothing of the project but common/files.py, so `common/config.py` can use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.files import replace_file

STATUS_SUFFIX = ".status.json"

# Runner name -> the bootstrap resource kind whose request it runs (bootstrap/spec.py LOCAL_RUNNERS).
SPEC_KINDS = {"pipe": "pipe", "firehose": "delivery_stream", "crawler": "glue_crawler"}
# In a delivery stream's spec file only, beside the request: what AWS would describe of the stream
# (bootstrap/resources/local.py writes it, runners/firehose_config.py reads it).
DESCRIPTION = "DeliveryStreamDescription"


def default_state_dir(root: Path) -> Path:
    """The state directory of the clone at `root` when STATE_DIR is not set."""
    return root / ".state"


def up_lock_file(state: Path) -> Path:
    return state / "up.lock"


def emulator_pid_file(state: Path, port: int) -> Path:
    """Per port, so two stacks (a chaos drill, a test) can share a state directory's parent safely."""
    return state / f"emulator-{port}.pid"


def emulator_log_file(state: Path, port: int) -> Path:
    return state / f"emulator-{port}.log"


def emulator_data_dir(state: Path) -> Path:
    return state / "emulator-data"


def emulator_s3_dir(state: Path) -> Path:
    """The emulator's S3 objects; its default is a /tmp folder shared by every emulator on the machine."""
    return emulator_data_dir(state) / "s3"


def athena_pid_file(state: Path, port: int) -> Path:
    return state / f"athena-{port}.pid"


def athena_log_file(state: Path, port: int) -> Path:
    return state / f"athena-{port}.log"


def verify_file(state: Path) -> Path:
    return state / "verify.json"


def sql_history_file(state: Path) -> Path:
    return state / "sql_history"


def chaos_run_dir(state: Path, run: str) -> Path:
    return state / "chaos" / run


def backfill_checkpoint_file(state: Path, table: str) -> Path:
    return state / "backfill" / f"{table}.json"


def backfill_lock_file(state: Path, table: str) -> Path:
    """Held by the one `make backfill` of `table` running: a second would share its checkpoint."""
    return state / "backfill" / f"{table}.lock"


def runners_dir(state: Path) -> Path:
    return state / "runners"


def spec_file(runners: Path, kind: str) -> Path:
    """The request of the bootstrap resource `kind` (pipe, delivery_stream, glue_crawler)."""
    return runners / f"{kind}.json"


def runner_spec_file(runners: Path, runner: str) -> Path:
    """The spec file the runner named `runner` reads (SPEC_KINDS)."""
    return spec_file(runners, SPEC_KINDS[runner])


def read_spec(path: Path) -> dict[str, Any] | None:
    """A spec file's content, or None when the bootstrap has not written it."""
    return json.loads(path.read_text()) if path.is_file() else None


def write_spec(path: Path, body: dict[str, Any]) -> None:
    """Replace a spec file atomically: a runner starting meanwhile reads the old request or the new one."""
    replace_file(path, json.dumps(body, indent=2, sort_keys=True))


def checkpoint_file(runners: Path, runner: str) -> Path:
    return runners / f"{runner}.checkpoint.json"


def status_file(runners: Path, runner: str) -> Path:
    return runners / f"{runner}{STATUS_SUFFIX}"


def status_files(runners: Path) -> dict[str, Path]:
    """Every runner's status file in the directory, by runner name, sorted by name."""
    found = sorted(runners.glob(f"*{STATUS_SUFFIX}")) if runners.is_dir() else []
    return {path.name[: -len(STATUS_SUFFIX)]: path for path in found}


def runner_lock_file(runners: Path, runner: str) -> Path:
    return runners / f"{runner}.lock"


def runner_log_file(runners: Path, runner: str) -> Path:
    return runners / f"{runner}.log"


def old_runner_pid_file(runners: Path, runner: str) -> Path:
    """Earlier versions found runners by this pid file; runners are now found by their lock."""
    return runners / f"{runner}.pid"
