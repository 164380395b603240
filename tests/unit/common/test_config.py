"""Settings: defaults, precedence, and one clear line for every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import load_settings, parse_option, writable_state_dir
from common.errors import ConfigError


def test_defaults_target_embedded_on_loopback() -> None:
    s = load_settings(env={})
    assert s.target == "embedded"
    assert s.endpoint_url == "http://127.0.0.1:4566"
    assert (s.flush_interval_s, s.invoke_interval_s) == (5, 1)


def test_aws_target_has_no_endpoint_and_aws_intervals() -> None:
    s = load_settings(env={"TARGET": "aws", "AWS_REGION": "eu-west-1"})
    assert s.endpoint_url is None
    assert s.region == "eu-west-1"
    assert (s.flush_interval_s, s.invoke_interval_s) == (60, 60)


def test_environment_beats_file_and_overrides_beat_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text('shard_count = 3\ntable_name = "from_file"\nport = 4600\n')
    s = load_settings(env={"PIPELINE_CONFIG": str(cfg), "SHARD_COUNT": "4"}, port=4700)
    assert (s.shard_count, s.table_name, s.port) == (4, "from_file", 4700)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_COUNT": "-1"}, "SHARD_COUNT=-1 is out of range; AWS allows 1 to 500"),
        ({"BUFFER_INTERVAL_S": "901"}, "BUFFER_INTERVAL_S=901 is out of range; AWS allows 0 to 900"),
        ({"BUFFER_SIZE_MB": "129"}, "BUFFER_SIZE_MB=129 is out of range; AWS allows 1 to 128"),
        ({"PROCESSOR_BUFFER_MB": "0.1"}, "PROCESSOR_BUFFER_MB=0.1 is out of range; AWS allows 0.2 to 3"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT='two' is not valid; set it to a whole number"),
        ({"TARGET": "gcp"}, "TARGET='gcp' is not a target; use one of embedded, compose, aws"),
        ({"LAKE_BUCKET": "Bad_Bucket"}, "LAKE_BUCKET='Bad_Bucket' is not a valid S3 bucket name"),
        ({"LAKE_BUCKET": "iceberg-lake"}, "not starting with 'iceberg'"),
        ({"HOST": "0.0.0.0"}, "HOST='0.0.0.0': the emulator binds to loopback only; use 127.0.0.1"),
        ({"LAKE_PREFIX": "orders"}, "LAKE_PREFIX='orders' must be a relative S3 prefix ending in '/'"),
        ({"ERROR_PREFIX": "orders/"}, "ERROR_PREFIX must not overlap LAKE_PREFIX"),
        ({"OUTPUT_FORMAT": "csv"}, "OUTPUT_FORMAT='csv' is unknown; use one of parquet, jsonl"),
        ({"ENDPOINT": "http://ministack:4566"}, "ENDPOINT is only for TARGET=compose"),
        # The results bucket expires every object: one bucket for both would delete the lake.
        ({"LAKE_BUCKET": "abc-lake", "RESULTS_BUCKET": "abc-lake"},
         "RESULTS_BUCKET='abc-lake' is LAKE_BUCKET too; the results bucket expires its objects"),
        # SizeInMBs is an integer: 64.9 used to become 64 without a word.
        ({"BUFFER_SIZE_MB": "64.9"}, "BUFFER_SIZE_MB='64.9' is not valid; set it to a whole number from 1 to 128"),
        # The Athena endpoint listens on PORT+41, which must be a port too.
        ({"PORT": "65535"}, "PORT=65535 is out of range; use 1 to 65,494 (the Athena endpoint listens on PORT+41)"),
        # expanduser() raised RuntimeError: a traceback of 78 lines.
        ({"STATE_DIR": "~nouserxyz/s"},
         "STATE_DIR='~nouserxyz/s' names the home of an unknown user; set an absolute path"),
        ({"AWS_REGION": "us east 1"}, "AWS_REGION='us east 1' is not an AWS Region; use one like us-east-1"),
        # What AWS refuses, refused here before anything is created (each used to pass).
        ({"LOG_RETENTION_DAYS": "2"},
         "LOG_RETENTION_DAYS=2 is not a retention CloudWatch Logs offers; use one of 1, 3, 5, 7, 14, 30"),
        ({"LAKE_BUCKET": "192.168.1.1"}, "LAKE_BUCKET='192.168.1.1' is not a valid S3 bucket name"),
        ({"LAKE_BUCKET": "sthree-lake"}, "LAKE_BUCKET='sthree-lake' is not a valid S3 bucket name"),
        ({"RESULTS_BUCKET": "foo-s3alias"}, "RESULTS_BUCKET='foo-s3alias' is not a valid S3 bucket name"),
        ({"LAKE_BUCKET": "amzn-s3-demo-x"}, "LAKE_BUCKET='amzn-s3-demo-x' is not a valid S3 bucket name"),
        ({"TABLE_NAME": "ab"}, "TABLE_NAME='ab' is not a valid name; a DynamoDB table name has 3 to 255"),
        ({"LAMBDA_NAME": "my.fn"}, "LAMBDA_NAME='my.fn' is not a valid name; a Lambda function name has 1 to 64"),
        ({"PROJECT": "p" * 56}, f"PROJECT={'p' * 56!r} is too long; the role names built from it"),
    ],
)
def test_bad_values_name_the_setting_and_the_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text("shard_cuont = 2\n")
    with pytest.raises(ConfigError, match="unknown setting 'shard_cuont'"):
        load_settings(env={"PIPELINE_CONFIG": str(cfg)})


def test_compose_target_may_point_at_the_emulator_service() -> None:
    s = load_settings(env={"TARGET": "compose", "ENDPOINT": "http://ministack:4566"})
    assert s.endpoint_url == "http://ministack:4566"


def test_bucket_names_default_to_the_account() -> None:
    s = load_settings(env={})
    assert s.lake_bucket_for("123456789012") == "sales-orders-lake-123456789012"
    assert s.results_bucket_for("123456789012") == "sales-orders-athena-123456789012"


# -- strict types: what is written is what is meant, or one line says what is allowed ---------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("shard_count = 1.9\n", "SHARD_COUNT=1.9 is not valid; set it to a whole number from 1 to 500"),
        ("port = true\n", "PORT=True is not valid; set it to a whole number from 1 to 65,494"),
        ('shard_count = "2"\n', "SHARD_COUNT='2' is not valid; set it to a whole number from 1 to 500"),
        ("buffer_size_mb = false\n", "BUFFER_SIZE_MB=False is not valid; set it to a whole number from 1 to 128"),
        ("partition_projection = 1\n", "PARTITION_PROJECTION=1 is not valid; set it to true or false"),
        ("table_name = 5\n", "TABLE_NAME=5 is not valid; set it to a string"),
        ("state_dir = 5\n", "STATE_DIR=5 is not valid; set it to a path"),
        # "" was Path('.'): the state would have gone into whatever directory the command ran in.
        ('state_dir = ""\n', "STATE_DIR='' is not valid; set it to a path"),
        ('region = ""\n', "AWS_REGION='' is not an AWS Region; use one like us-east-1"),
        ("[shard_count]\nx = 1\n", "SHARD_COUNT={'x': 1} is not valid; set it to a whole number from 1 to 500"),
    ],
)
def test_toml_values_have_strict_types(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(env={"PIPELINE_CONFIG": str(cfg)})
    assert str(err.value) == message


def test_toml_whole_floats_and_ints_for_floats_are_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text("shard_count = 2.0\nprocessor_buffer_mb = 1\npartition_projection = true\n")
    s = load_settings(env={"PIPELINE_CONFIG": str(cfg)})
    assert (s.shard_count, s.processor_buffer_mb, s.partition_projection) == (2, 1.0, True)
    assert type(s.shard_count) is int and type(s.processor_buffer_mb) is float


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_COUNT": "2_0"}, "SHARD_COUNT='2_0' is not valid; set it to a whole number from 1 to 500"),
        ({"SHARD_COUNT": " 2"}, "SHARD_COUNT=' 2' is not valid; set it to a whole number from 1 to 500"),
        ({"SHARD_COUNT": "1.0"}, "SHARD_COUNT='1.0' is not valid; set it to a whole number from 1 to 500"),
        ({"PORT": "\u0664\u0665\u0666"}, "PORT='\u0664\u0665\u0666' is not valid; set it to a whole number"),
        ({"PROCESSOR_BUFFER_MB": "nan"}, "PROCESSOR_BUFFER_MB='nan' is not valid; set it to a number from 0.2 to 3"),
        ({"PROCESSOR_BUFFER_MB": "inf"}, "PROCESSOR_BUFFER_MB='inf' is not valid; set it to a number from 0.2 to 3"),
        ({"PARTITION_PROJECTION": "maybe"}, "PARTITION_PROJECTION='maybe' is not valid; set it to 1 or 0"),
    ],
)
def test_environment_strings_parse_strictly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert str(err.value).startswith(message)


def test_environment_numbers_and_switches_that_are_meant() -> None:
    s = load_settings(env={"SHARD_COUNT": "3", "PROCESSOR_BUFFER_MB": "1.5", "BUFFER_INTERVAL_S": "-1",
                           "PARTITION_PROJECTION": "Yes"})
    assert (s.shard_count, s.processor_buffer_mb, s.buffer_interval_s, s.partition_projection) == (3, 1.5, -1, True)
    assert load_settings(env={"PARTITION_PROJECTION": "0"}).partition_projection is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"shard_count = [\n", "is not valid TOML (Invalid value (at end of document))"),
        (b"shard_count = 2\nshard_count = 3\n", "is not valid TOML (Cannot overwrite a value (at line 2, column 16))"),
        (b"table_name = '\xff\xfe'\n", "is not UTF-8 text"),
    ],
)
def test_a_config_file_that_is_not_toml_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    cfg = tmp_path / "pipeline.toml"
    cfg.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_settings(env={"PIPELINE_CONFIG": str(cfg)})
    assert str(err.value).startswith(f"PIPELINE_CONFIG={cfg} {message}")
    assert "\n" not in str(err.value)


def test_an_unwritable_state_dir_is_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "state"
    taken.write_text("a file, not a directory")
    s = load_settings(env={"STATE_DIR": str(taken)})
    with pytest.raises(ConfigError) as err:
        writable_state_dir(s)
    assert str(err.value).startswith(f"STATE_DIR={taken} is not a writable directory (")
    assert taken.read_text() == "a file, not a directory"
    ok = load_settings(env={"STATE_DIR": str(tmp_path / "fresh")})
    assert writable_state_dir(ok) == tmp_path / "fresh"
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["runners"]


@pytest.mark.parametrize(
    ("flag", "raw", "kind", "bounds", "message"),
    [
        ("--orders", "1e20", int, (1, 1_000_000), "--orders must be a whole number from 1 to 1,000,000, got '1e20'"),
        ("--orders", "100000000000000000000", int, (1, 1_000_000), "--orders must be a whole number from 1 to"),
        ("--orders", "-3", int, (1, 1_000_000), "--orders must be a whole number from 1 to 1,000,000, got '-3'"),
        ("--days", "nan", float, (0, 3650), "--days must be a number above 0 and at most 3,650, got 'nan'"),
        ("--days", "0", float, (0, 3650), "--days must be a number above 0 and at most 3,650, got '0'"),
    ],
)
def test_cli_options_parse_strictly_and_name_their_range(flag: str, raw: str, kind: type, bounds: tuple,
                                                          message: str) -> None:
    lo, hi = bounds
    with pytest.raises(ConfigError) as err:
        parse_option(flag, raw, kind, lo, hi, above=kind is float)
    assert str(err.value).startswith(message)


def test_cli_options_in_range_are_returned_typed() -> None:
    assert parse_option("--orders", "2000", int, 1, 1_000_000) == 2000
    assert parse_option("--rate", "12.5", float, 0, 100_000, above=True) == 12.5
    assert parse_option("--days", "1e-3", float, 0, 3650, above=True) == 0.001


# -- what AWS would refuse is refused here, on every target (issue #13) ------------------------------------------

EVERY_TARGET = [{}, {"TARGET": "compose"}, {"TARGET": "aws"}]


@pytest.mark.parametrize("target", EVERY_TARGET)
@pytest.mark.parametrize(
    ("env", "message"),
    [
        # CreatePipe with a Kinesis target: at most 500 records per batch (eb-pipes-batching-concurrency.html).
        ({"PIPE_BATCH_SIZE": "501"}, "PIPE_BATCH_SIZE=501 is out of range; AWS allows 1 to 500"),
        # Firehose stops a transform invocation after 5 minutes (data-transformation.html).
        ({"LAMBDA_TIMEOUT_S": "301"}, "LAMBDA_TIMEOUT_S=301 is out of range; AWS allows 1 to 300"),
        ({"PIPE_MAX_RETRY_ATTEMPTS": "10001"},
         "PIPE_MAX_RETRY_ATTEMPTS=10001 is out of range; AWS allows -1 to 10,000"),
        ({"PIPE_MAX_RETRY_ATTEMPTS": "-2"}, "PIPE_MAX_RETRY_ATTEMPTS=-2 is out of range; AWS allows -1 to 10,000"),
        ({"PIPE_BATCHING_WINDOW_S": "301"}, "PIPE_BATCHING_WINDOW_S=301 is out of range; AWS allows 0 to 300"),
        ({"PIPE_MAX_RECORD_AGE_S": "59"},
         "PIPE_MAX_RECORD_AGE_S=59 is out of range; AWS allows -1 (no limit) or 60 to 604,800"),
        ({"PIPE_MAX_RECORD_AGE_S": "604801"},
         "PIPE_MAX_RECORD_AGE_S=604801 is out of range; AWS allows -1 (no limit) or 60 to 604,800"),
        ({"PIPE_MAX_RECORD_AGE_S": "-2"},
         "PIPE_MAX_RECORD_AGE_S=-2 is out of range; AWS allows -1 (no limit) or 60 to 604,800"),
    ],
)
def test_settings_aws_refuses_are_refused_on_every_target(target: dict, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={**target, **env})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_the_limits_are_accepted_at_their_bounds() -> None:
    s = load_settings(env={"PIPE_BATCH_SIZE": "500", "LAMBDA_TIMEOUT_S": "300", "PIPE_MAX_RETRY_ATTEMPTS": "-1",
                           "PIPE_MAX_RECORD_AGE_S": "-1"})
    assert (s.pipe_batch_size, s.lambda_timeout_s, s.pipe_max_retry_attempts, s.pipe_max_record_age_s) == (
        500, 300, -1, -1)
    s = load_settings(env={"PIPE_MAX_RETRY_ATTEMPTS": "10000", "PIPE_MAX_RECORD_AGE_S": "60"})
    assert (s.pipe_max_retry_attempts, s.pipe_max_record_age_s) == (10000, 60)
    assert load_settings(env={"PIPE_MAX_RECORD_AGE_S": "604800"}).pipe_max_record_age_s == 604800
    assert load_settings(env={"PIPE_BATCHING_WINDOW_S": "300"}).pipe_batching_window_s == 300
    # The pipe gives up on a record well before DynamoDB Streams' 24 h retention forgets it.
    default = load_settings(env={})
    assert (default.pipe_max_retry_attempts, default.pipe_max_record_age_s) == (10, 6 * 3600)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TARGET": "aws", "BUFFER_SIZE_MB": "1"},
         "BUFFER_SIZE_MB=1 is below AWS's 64 MiB minimum with dynamic partitioning; raise it"),
        ({"TARGET": "aws", "BUFFER_INTERVAL_S": "5"},
         "BUFFER_INTERVAL_S=5 is below AWS's 60 s minimum with dynamic partitioning; raise it"),
        ({"LOCAL_FAST_BUFFERS": "0", "BUFFER_INTERVAL_S": "5"},
         "BUFFER_INTERVAL_S=5 is below AWS's 60 s minimum with dynamic partitioning; raise it, "
         "or set LOCAL_FAST_BUFFERS=1 (emulated targets only)"),
        ({"TARGET": "compose", "LOCAL_FAST_BUFFERS": "0", "BUFFER_SIZE_MB": "8"},
         "BUFFER_SIZE_MB=8 is below AWS's 64 MiB minimum with dynamic partitioning; raise it, or set"),
    ],
)
def test_buffering_aws_refuses_is_refused_unless_local_fast_buffers(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_local_fast_buffers_is_the_emulated_default_and_off_it_buffers_as_aws_does() -> None:
    fast = load_settings(env={"BUFFER_SIZE_MB": "1", "BUFFER_INTERVAL_S": "2"})  # the demo's quick local flushes
    assert fast.local_fast_buffers is True and fast.flush_interval_s == 2
    exact = load_settings(env={"LOCAL_FAST_BUFFERS": "0"})
    assert (exact.flush_interval_s, exact.invoke_interval_s) == (60, 60)  # AWS's defaults, as TARGET=aws
    aws = load_settings(env={"TARGET": "aws", "LOCAL_FAST_BUFFERS": "1"})  # local-only: no effect on aws
    assert (aws.flush_interval_s, aws.invoke_interval_s) == (60, 60)
