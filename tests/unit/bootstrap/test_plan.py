"""The plan's pure core: desired resources per target, diffing, Ref resolution, AWS's refusals."""

from __future__ import annotations

import pytest

from bootstrap.plan import CREATE, NOOP, UPDATE, aws_warnings, decide, diff
from bootstrap.spec import KIND_ORDER, Ref, Resource, desired_resources, lake_prefix_expression, resolve
from common.config import load_settings
from common.errors import ConfigError

ACCOUNT = "123456789012"


def by_kind(resources: list[Resource]) -> dict[str, list[Resource]]:
    out: dict[str, list[Resource]] = {}
    for r in resources:
        out.setdefault(r.kind, []).append(r)
    return out


def test_every_pipeline_resource_is_planned_in_dependency_order() -> None:
    resources = desired_resources(load_settings(env={}), ACCOUNT)
    kinds = [r.kind for r in resources]
    for before, after in [("dynamodb_table", "pipe"), ("kinesis_stream", "pipe"), ("iam_role", "lambda_function"),
                          ("lambda_function", "delivery_stream"), ("glue_database", "glue_crawler"),
                          ("s3_bucket", "athena_workgroup"), ("sqs_queue", "pipe")]:
        assert kinds.index(before) < kinds.index(after)
    grouped = by_kind(resources)
    assert len(grouped["s3_bucket"]) == 2 and len(grouped["iam_role"]) == 4


def test_emulated_targets_hand_pipe_firehose_and_crawler_to_local_runners() -> None:
    local = {r.kind: r.local_runner for r in desired_resources(load_settings(env={}), ACCOUNT)}
    assert local["pipe"] == "pipe runner"
    assert local["delivery_stream"] == "firehose runner"
    assert local["glue_crawler"] == "crawler"
    assert local["dynamodb_table"] is None
    assert local["sqs_queue"] is None  # the emulator serves SQS: the queue is created there too
    cloud = desired_resources(load_settings(env={"TARGET": "aws"}), ACCOUNT)
    assert all(r.local_runner is None for r in cloud)
    assert {r.name for r in cloud if r.kind == "log_group"} == {
        "/aws/lambda/sales-orders-transform", "/aws/kinesisfirehose/sales-orders-firehose",
        "/aws/vendedlogs/pipes/sales-orders-pipe"}


@pytest.mark.parametrize("env", [{}, {"TARGET": "aws"}])
def test_the_pipe_dead_letter_queue_is_planned_on_every_target_before_the_pipe(env: dict) -> None:
    resources = desired_resources(load_settings(env=env), ACCOUNT)
    keys = [r.key for r in resources]
    assert keys.index("sqs_queue:sales-orders-pipe-dlq") == keys.index("pipe:sales-orders-pipe") - 1
    assert [r.kind for r in resources] == sorted((r.kind for r in resources), key=KIND_ORDER.index)
    queue, pipe = (r for r in resources if r.kind in ("sqs_queue", "pipe"))
    assert queue.params == {
        "QueueName": "sales-orders-pipe-dlq",
        "Attributes": {"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"},
        "tags": {"project": "sales-orders-cdc", "managed-by": "sales-orders-cdc-bootstrap"}}
    dead_letter = pipe.params["SourceParameters"]["DynamoDBStreamParameters"]["DeadLetterConfig"]["Arn"]
    assert dead_letter == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue.name}"


def test_same_request_for_local_runner_and_aws_except_buffer_interval() -> None:
    settings = load_settings(env={"BUFFER_INTERVAL_S": "60", "PROCESSOR_INTERVAL_S": "60"})
    local = {r.kind: r for r in desired_resources(settings, ACCOUNT)}
    cloud = {r.kind: r for r in desired_resources(load_settings(env={"TARGET": "aws"}), ACCOUNT)}
    assert local["delivery_stream"].params == cloud["delivery_stream"].params
    assert local["pipe"].params == cloud["pipe"].params


def test_without_local_fast_buffers_the_local_runners_get_the_very_aws_request() -> None:
    local = {r.kind: r for r in desired_resources(load_settings(env={"LOCAL_FAST_BUFFERS": "0"}), ACCOUNT)}
    cloud = {r.kind: r for r in desired_resources(load_settings(env={"TARGET": "aws"}), ACCOUNT)}
    assert local["delivery_stream"].params == cloud["delivery_stream"].params
    assert local["pipe"].params == cloud["pipe"].params


def test_firehose_request_partitions_by_lambda_keys_and_routes_errors() -> None:
    settings = load_settings(env={})
    fh = {r.kind: r for r in desired_resources(settings, ACCOUNT)}["delivery_stream"].params
    dest = fh["ExtendedS3DestinationConfiguration"]
    assert fh["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert dest["Prefix"] == lake_prefix_expression(settings) == (
        "orders/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
        "day=!{partitionKeyFromLambda:day}/")
    assert dest["ErrorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")
    assert dest["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert dest["DataFormatConversionConfiguration"]["OutputFormatConfiguration"] == {
        "Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}}
    (lam,) = dest["ProcessingConfiguration"]["Processors"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in lam["Parameters"]} == {
        "LambdaArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:sales-orders-transform",
        "NumberOfRetries": "3", "BufferSizeInMBs": "1", "BufferIntervalInSeconds": "1"}


def test_jsonl_output_appends_a_delimiter_and_gzips() -> None:
    settings = load_settings(env={"OUTPUT_FORMAT": "jsonl"})
    dest = {r.kind: r for r in desired_resources(settings, ACCOUNT)}["delivery_stream"].params[
        "ExtendedS3DestinationConfiguration"]
    assert dest["CompressionFormat"] == "GZIP"
    assert "DataFormatConversionConfiguration" not in dest
    assert [p["Type"] for p in dest["ProcessingConfiguration"]["Processors"]] == ["Lambda", "AppendDelimiterToRecord"]


def test_pipe_source_is_known_only_after_the_table_exists() -> None:
    pipe = {r.kind: r for r in desired_resources(load_settings(env={}), ACCOUNT)}["pipe"]
    assert pipe.params["Source"] == Ref("table_stream_arn")
    key = {"KinesisStreamParameters": {"PartitionKey": "$.dynamodb.Keys.order_id.S"}}
    assert pipe.params["TargetParameters"] == key
    resolved = resolve(pipe.params, {"table_stream_arn": "arn:stream"})
    assert resolved["Source"] == "arn:stream"
    assert resolved["Target"] == pipe.params["Target"]


def test_diff_names_only_fields_that_differ() -> None:
    desired = {"a": 1, "b": {"x": [1, 2]}, "c": "same"}
    assert diff(desired, None) == ("a", "b", "c")
    assert diff(desired, {"a": 1, "b": {"x": (1, 2)}, "c": "same"}) == ()
    assert diff(desired, {"a": 2, "b": {"x": [2, 1]}, "c": "same", "extra": 1}) == ("a", "b")


def test_decide_create_update_noop() -> None:
    res = Resource("kinesis_stream", "s", {})
    assert decide(res, {"ShardCount": 2}, None).action == CREATE
    change = decide(res, {"ShardCount": 2}, {"ShardCount": 1})
    assert (change.action, change.fields) == (UPDATE, ("ShardCount",))
    assert decide(res, {"ShardCount": 2}, {"ShardCount": 2}).action == NOOP


def test_small_buffers_are_a_named_local_only_deviation_and_refused_everywhere_else() -> None:
    local = load_settings(env={"BUFFER_SIZE_MB": "1", "BUFFER_INTERVAL_S": "2"})
    assert aws_warnings(local) == (
        "BUFFER_SIZE_MB=1 is below AWS's 64 MiB minimum with dynamic partitioning: a local-only deviation "
        "(LOCAL_FAST_BUFFERS=1); TARGET=aws refuses it",
        "BUFFER_INTERVAL_S=2 is below AWS's 60 s minimum with dynamic partitioning: a local-only deviation "
        "(LOCAL_FAST_BUFFERS=1); TARGET=aws refuses it")
    (default,) = aws_warnings(load_settings(env={}))  # the demo's 5 s flushes
    assert default == ("BUFFER_INTERVAL_S=5 is below AWS's 60 s minimum with dynamic partitioning: a local-only "
                       "deviation (LOCAL_FAST_BUFFERS=1); TARGET=aws uses 60")
    assert aws_warnings(load_settings(env={"TARGET": "aws"})) == ()
    assert aws_warnings(load_settings(env={"LOCAL_FAST_BUFFERS": "0"})) == ()
    for env in ({"TARGET": "aws", "BUFFER_SIZE_MB": "1"}, {"LOCAL_FAST_BUFFERS": "0", "BUFFER_SIZE_MB": "1"}):
        with pytest.raises(ConfigError, match="BUFFER_SIZE_MB=1 is below AWS's 64 MiB minimum"):
            load_settings(env=env)


def test_every_resource_is_tagged_with_the_project() -> None:
    for r in desired_resources(load_settings(env={"TARGET": "aws"}), ACCOUNT):
        tags = r.params.get("Tags", r.params.get("tags"))
        if r.kind == "glue_database":
            continue  # Glue databases take no tags at creation
        values = tags.values() if isinstance(tags, dict) else [t["Value"] for t in tags]
        assert "sales-orders-cdc" in values, r.key


def test_emulators_need_no_iam_propagation_wait() -> None:
    from bootstrap.resources.propagation import wait_for_role
    from common.aws import Clients

    slept: list[float] = []
    # No emulator runs here: an emulated target must return before asking IAM anything.
    assert wait_for_role(Clients(load_settings(env={"PORT": "9"})), "arn:aws:iam::1:role/r", sleep=slept.append) == 0
    assert slept == []


class FakeHandler:
    """Observes through `observe_fn`; the table exists and has a stream, the rest does not exist."""

    def __init__(self, observe_fn) -> None:  # type: ignore[no-untyped-def]
        self.observe_fn = observe_fn

    def observe(self, clients: object, res: Resource) -> dict | None:
        return self.observe_fn(res)

    def facts(self, clients: object, res: Resource) -> dict:
        return {"table_stream_arn": "arn:stream"} if res.kind == "dynamodb_table" else {}

    def desired(self, res: Resource) -> dict:
        return dict(res.params)

    def tags(self, clients: object, res: Resource) -> dict:
        return {}


def test_plan_observes_resources_at_once_and_a_resource_with_a_ref_after_its_facts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from types import SimpleNamespace

    from bootstrap import plan as plan_module

    settings = load_settings(env={})
    planned = [Resource("s3_bucket", "lake", {"A": 1}), Resource("dynamodb_table", "orders", {}),
               Resource("pipe", "pipe", {"Source": Ref("table_stream_arn")})]
    together = threading.Barrier(2, timeout=30)  # broken (an error) if the two are not observed at the same time
    seen: dict[str, dict] = {}

    def observe(res: Resource) -> dict | None:
        if res.kind != "pipe":
            together.wait()
        seen[res.kind] = dict(res.params)
        return {} if res.kind == "dynamodb_table" else None

    monkeypatch.setattr(plan_module, "desired_resources", lambda s, account: planned)
    monkeypatch.setattr(plan_module, "handler_for", lambda kind, local: FakeHandler(observe))
    monkeypatch.setattr(plan_module, "account_of", lambda clients: ACCOUNT)
    plan = plan_module.build_plan(SimpleNamespace(settings=settings), settings)  # type: ignore[arg-type]
    assert seen["pipe"] == {"Source": "arn:stream"}  # observed with the table's facts
    assert [(c.resource.kind, c.action) for c in plan.changes] == [
        ("s3_bucket", CREATE), ("dynamodb_table", NOOP), ("pipe", CREATE)]
    assert plan.changes[2].resource.params == {"Source": Ref("table_stream_arn")}  # apply resolves it


def test_apply_waits_for_a_pending_lambda_after_the_other_steps_on_the_emulated_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from bootstrap import plan as plan_module
    from bootstrap.plan import Change, Plan
    from common.console import Console

    steps: list[str] = []

    class Settling(FakeHandler):
        def start_create(self, clients: object, res: Resource) -> None:
            steps.append(f"start {res.kind}")

        def wait_ready(self, clients: object, res: Resource) -> None:
            steps.append(f"ready {res.kind}")

        def create(self, clients: object, res: Resource) -> None:  # AWS: created and waited for in its turn
            steps.append(f"create {res.kind}")

    class Plain(FakeHandler):
        def create(self, clients: object, res: Resource) -> None:
            steps.append(f"create {res.kind}")

    monkeypatch.setattr(plan_module, "handler_for", lambda kind, local: (
        Settling(lambda r: None) if kind == "lambda_function" else Plain(lambda r: None)))
    changes = tuple(Change(Resource(kind, kind, {}), CREATE) for kind in ("iam_role", "lambda_function", "sqs_queue"))
    for emulated, expected in ((True, ["create iam_role", "start lambda_function", "create sqs_queue",
                                       "ready lambda_function"]),
                               (False, ["create iam_role", "create lambda_function", "create sqs_queue"])):
        steps.clear()
        clients = SimpleNamespace(settings=SimpleNamespace(emulated=emulated))
        plan_module.apply(clients, Plan("t", "r", ACCOUNT, changes), Console(capture=True))  # type: ignore[arg-type]
        assert steps == expected


def test_apply_creates_the_independent_kinds_at_once_and_prints_their_lines_in_plan_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from types import SimpleNamespace

    from bootstrap import plan as plan_module
    from bootstrap.plan import Change, Plan
    from common.console import Console

    together = threading.Barrier(3, timeout=30)  # broken (an error) unless the three run at the same time
    done: list[str] = []

    class Creating(FakeHandler):
        def create(self, clients: object, res: Resource) -> None:
            if res.kind != "lambda_function":
                together.wait()
            else:
                assert len(done) == 3  # after the independent ones
            done.append(res.name)

    monkeypatch.setattr(plan_module, "handler_for", lambda kind, local: Creating(lambda r: None))
    changes = tuple(Change(Resource(kind, name, {}), CREATE) for kind, name in (
        ("s3_bucket", "lake"), ("dynamodb_table", "orders"), ("iam_role", "pipe-role"), ("lambda_function", "fn")))
    console = Console(capture=True)
    clients = SimpleNamespace(settings=SimpleNamespace(emulated=False))
    plan_module.apply(clients, Plan("t", "r", ACCOUNT, changes), console)  # type: ignore[arg-type]
    assert done[-1] == "fn"
    steps = [line for line in console.lines if line.lstrip("> ").startswith("create")]
    assert [line.split()[-1] for line in steps] == ["lake", "orders", "pipe-role", "fn"]
