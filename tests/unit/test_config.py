"""Settings: defaults, precedence, and one clear line for every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import load_settings
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
