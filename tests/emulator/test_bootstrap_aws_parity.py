"""The handlers the aws target hardened still round-trip on the embedded emulator.

Unique names (the emulator is shared by the session) and a state dir of its own (the runner
specs live there): plan creates everything, apply, a second plan finds nothing to do, destroy
removes it all, and the runner-served kinds never reach the emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.plan import CREATE, NOOP, apply, build_plan, destroy
from common.aws import Clients
from common.config import Settings, with_overrides
from common.console import Console
from common.state_dir import spec_file


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_plan_apply_replan_destroy_keeps_working_on_the_emulator(
    emulator_settings: Settings, tmp_path: Path, output_format: str
) -> None:
    tag = f"parity-{output_format}"
    settings = with_overrides(
        emulator_settings, state_dir=tmp_path / "state", project=tag, output_format=output_format,
        table_name=f"{tag}-orders", stream_name=f"{tag}-cdc", lake_bucket=f"{tag}-lake",
        results_bucket=f"{tag}-results", lambda_name=f"{tag}-transform", pipe_name=f"{tag}-pipe",
        delivery_stream=f"{tag}-firehose", glue_database=f"{tag.replace('-', '_')}_db", glue_table=f"{tag}_cdc",
        crawler_name=f"{tag}-crawler", workgroup=f"{tag}-wg",
    )
    clients = Clients(settings)
    console = Console(capture=True)
    plan = build_plan(clients, settings)
    assert [c.resource.kind for c in plan.changes] == [
        "s3_bucket", "s3_bucket", "dynamodb_table", "kinesis_stream", "iam_role", "iam_role", "iam_role",
        "iam_role", "lambda_function", "glue_database", "glue_table", "delivery_stream", "sqs_queue", "pipe",
        "glue_crawler", "athena_workgroup"]
    assert {c.action for c in plan.changes} == {CREATE}
    try:
        apply(clients, plan, console)
        again = build_plan(clients, settings)
        assert [(c.resource.key, c.fields) for c in again.pending] == []
        assert {c.action for c in again.changes} == {NOOP}
        for kind in ("pipe", "delivery_stream", "glue_crawler"):
            assert spec_file(settings.runner_dir, kind).is_file()
        assert all(p["Name"] != settings.pipe_name for p in clients.pipes.list_pipes()["Pipes"])
        assert settings.delivery_stream not in clients.firehose.list_delivery_streams()["DeliveryStreamNames"]
    finally:
        removed = destroy(clients, settings, console, empty_buckets=True)
    assert removed == 16
    assert {c.action for c in build_plan(clients, settings).changes} == {CREATE}
