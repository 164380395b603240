"""common/state_dir.py: the names the bootstrap, the runners, `make up/down/status` and the dashboard share.

The names are the contract (a state directory written by one version is read by the next, and the
Makefile, compose healthcheck and README name some of them), so they are asserted literally here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from bootstrap.resources.local import RunnerSpec
from bootstrap.spec import LOCAL_RUNNERS, desired_resources, resolve
from common import state_dir as layout
from common.config import ROOT, load_settings
from runners import service
from runners.crawler import load_crawler_spec, spec_from_request

ACCOUNT = "000000000000"


def test_the_state_directory_layout_is_spelled_as_documented(tmp_path: Path) -> None:
    state = tmp_path
    runners = layout.runners_dir(state)
    assert runners == state / "runners"
    assert {
        layout.up_lock_file(state): "up.lock",
        layout.emulator_pid_file(state, 4566): "emulator-4566.pid",
        layout.emulator_log_file(state, 4566): "emulator-4566.log",
        layout.emulator_data_dir(state): "emulator-data",
        layout.emulator_s3_dir(state): "emulator-data/s3",
        layout.athena_pid_file(state, 4607): "athena-4607.pid",
        layout.athena_log_file(state, 4607): "athena-4607.log",
        layout.verify_file(state): "verify.json",
        layout.sql_history_file(state): "sql_history",
        layout.chaos_run_dir(state, "20260101-120000"): "chaos/20260101-120000",
        layout.backfill_checkpoint_file(state, "sales_orders"): "backfill/sales_orders.json",
        layout.checkpoint_file(runners, "pipe"): "runners/pipe.checkpoint.json",
        layout.status_file(runners, "pipe"): "runners/pipe.status.json",
        layout.runner_lock_file(runners, "pipe"): "runners/pipe.lock",
        layout.runner_log_file(runners, "pipe"): "runners/pipe.log",
        layout.old_runner_pid_file(runners, "pipe"): "runners/pipe.pid",
    } == {state / name: name for name in [
        "up.lock", "emulator-4566.pid", "emulator-4566.log", "emulator-data", "emulator-data/s3",
        "athena-4607.pid", "athena-4607.log", "verify.json", "sql_history", "chaos/20260101-120000",
        "backfill/sales_orders.json",
        "runners/pipe.checkpoint.json", "runners/pipe.status.json", "runners/pipe.lock", "runners/pipe.log",
        "runners/pipe.pid",
    ]}


def test_settings_use_the_layout_for_the_default_and_the_runners_directory(tmp_path: Path) -> None:
    assert load_settings(env={}).state_dir == layout.default_state_dir(ROOT) == ROOT / ".state"
    settings = load_settings(env={"STATE_DIR": str(tmp_path)})
    assert settings.runner_dir == layout.runners_dir(tmp_path)


def test_each_runner_reads_the_spec_file_of_the_bootstrap_resource_it_serves(tmp_path: Path) -> None:
    """The hand-off: the bootstrap writes <runners>/<resource kind>.json, a runner reads it by its own name."""
    assert layout.spec_file(tmp_path, "delivery_stream") == tmp_path / "delivery_stream.json"
    assert {name: layout.runner_spec_file(tmp_path, name).name for name in layout.SPEC_KINDS} == {
        "pipe": "pipe.json", "firehose": "delivery_stream.json", "crawler": "glue_crawler.json"}


def test_bootstrap_kinds_served_by_runners_each_have_a_runner() -> None:
    assert set(layout.SPEC_KINDS.values()) == set(LOCAL_RUNNERS)


def test_the_runners_read_the_very_request_the_bootstrap_wrote(tmp_path: Path) -> None:
    """Both sides of the hand-off, through the files only: the bootstrap's apply step, then each runner's reader."""
    settings = load_settings(env={}, state_dir=tmp_path)
    clients = SimpleNamespace(settings=settings, account_id=ACCOUNT)
    facts = defaultdict(lambda: "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/1")  # what apply learnt
    served = {r.kind: replace(r, params=resolve(r.params, facts)) for r in desired_resources(settings, ACCOUNT)
              if r.kind in ("pipe", "glue_crawler")}
    assert set(served) == {"pipe", "glue_crawler"}
    crawler_request = {**served["glue_crawler"].params, "Name": "named-in-the-file"}  # not what settings say
    served["glue_crawler"] = replace(served["glue_crawler"], params=crawler_request)
    for res in served.values():
        RunnerSpec().create(clients, res)  # type: ignore[arg-type]
    assert service.load_spec(settings, "pipe") == served["pipe"].params
    crawler = load_crawler_spec(clients, settings)  # type: ignore[arg-type]
    assert crawler == spec_from_request(crawler_request, settings.glue_table)
    assert crawler.crawler_name == "named-in-the-file"  # read from the file, not from the settings


def test_a_spec_file_round_trips_and_replaces_atomically(tmp_path: Path) -> None:
    path = layout.spec_file(tmp_path / "runners", "pipe")
    assert layout.read_spec(path) is None  # not written yet
    layout.write_spec(path, {"Name": "p", "Source": "arn:a"})
    assert layout.read_spec(path) == {"Name": "p", "Source": "arn:a"}
    layout.write_spec(path, {"Name": "p2"})
    assert json.loads(path.read_text()) == {"Name": "p2"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["pipe.json"]  # no temp file left behind


def test_status_files_names_each_runner_and_skips_other_files(tmp_path: Path) -> None:
    assert layout.status_files(tmp_path / "missing") == {}
    for name in ("pipe", "firehose"):
        layout.status_file(tmp_path, name).write_text("{}")
    (tmp_path / "pipe.checkpoint.json").write_text("{}")
    (tmp_path / ".pipe.status.123.tmp").write_text("{}")  # a status being written
    assert layout.status_files(tmp_path) == {
        "firehose": tmp_path / "firehose.status.json", "pipe": tmp_path / "pipe.status.json"}
    assert list(layout.status_files(tmp_path)) == ["firehose", "pipe"]
