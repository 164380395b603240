"""The one settings object: every AWS name, limit and knob of the pipeline lives here.

Loaded once at the CLI (environment variables over an optional TOML file over defaults),
validated before any resource is touched, then passed down. Nothing else reads the
environment, except `transform/`, which reads only its own Lambda environment.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.state_dir import default_state_dir, runners_dir

TARGETS = ("embedded", "compose", "aws")
EMULATED_TARGETS = ("embedded", "compose")
OUTPUT_FORMATS = ("parquet", "jsonl")  # what the delivery stream writes to the lake (OUTPUT_FORMAT)
ROOT = Path(__file__).resolve().parent.parent

# AWS's documented ranges, mirrored so a bad value stops before anything is created, on every target
# (what AWS would refuse is refused here too: local predicts AWS).
# Firehose BufferingHints: https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html
# Processor parameters: https://docs.aws.amazon.com/firehose/latest/APIReference/API_ProcessorParameter.html
# LAMBDA_TIMEOUT_S: Lambda allows 900 s, but Firehose supports a transform invocation of at most 5 minutes
#   (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html, "Lambda invocation duration").
# PIPE_BATCH_SIZE: a DynamoDB stream source takes 1-10,000, but "you can't configure a pipe with a larger batch
#   size than the target supports", and a Kinesis stream target supports 500
#   (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-batching-concurrency.html).
# PIPE_MAX_RETRY_ATTEMPTS (-1: without limit), PIPE_BATCHING_WINDOW_S and PIPE_MAX_RECORD_AGE_S:
#   https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_PipeSourceDynamoDBStreamParameters.html
# The local Athena endpoint listens beside the emulator: PORT=4566 -> 4607 (LocalStack's old Athena port).
ATHENA_PORT_OFFSET = 41
RANGES: dict[str, tuple[float, float]] = {
    "port": (1, 65535 - ATHENA_PORT_OFFSET),
    "shard_count": (1, 500),
    "buffer_size_mb": (1, 128),
    "buffer_interval_s": (0, 900),
    "processor_buffer_mb": (0.2, 3),
    "processor_interval_s": (0, 900),
    "lambda_retries": (0, 300),
    "lambda_timeout_s": (1, 300),
    "lambda_memory_mb": (128, 10240),
    "max_active_partitions": (1, 500),
    "pipe_batch_size": (1, 500),
    "pipe_max_retry_attempts": (-1, 10000),
    "pipe_batching_window_s": (0, 300),
    "log_retention_days": (1, 3653),
    "lake_noncurrent_days": (1, 3653),
    "results_expiration_days": (1, 3653),
    "athena_scan_limit_gb": (1, 1_000_000),
    "backfill_segments": (1, 1000),
    "backfill_page_items": (1, 100_000),
}
# Why a range is narrower than the API field's own, said after the range.
RANGE_REASONS = {
    "port": f"the Athena endpoint listens on PORT+{ATHENA_PORT_OFFSET}",
    "lambda_timeout_s": "Firehose stops a transform invocation after 5 minutes",
    "pipe_batch_size": "a pipe's batch may not exceed what its Kinesis target takes",
}
# MaximumRecordAgeInSeconds: -1 (no limit) or 60 to 604,800. The Pipes reference gives the field's range as
# -1..604,800; the stream pollers refuse 0-59 (Lambda documents the same field: "The minimum valid value for
# maximum record age is 60s"), so those are refused here too.
PIPE_RECORD_AGE_RANGE = (60, 604_800)
# AWS refuses these with dynamic partitioning (no zero buffering either:
# https://docs.aws.amazon.com/firehose/latest/dev/buffering.html). On the emulated targets
# LOCAL_FAST_BUFFERS=1 (their default) allows less so a demo is quick; `plan` names it a local-only deviation.
# https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html
AWS_DYNAMIC_PARTITIONING_MIN_BUFFER_MB = 64
AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S = 60
LOCAL_FAST_FLUSH_S = 5  # the emulated targets' flush interval with LOCAL_FAST_BUFFERS=1 (BUFFER_INTERVAL_S=-1)
LOCAL_FAST_INVOKE_S = 1  # and their processor interval (PROCESSOR_INTERVAL_S=-1), which AWS allows too

# S3 general purpose bucket names (s3/latest/userguide/bucketnamingrules.html): 3-63 characters, no two dots in a
# row, not shaped like an IP address, none of AWS's reserved prefixes and suffixes.
_BUCKET_RE = re.compile(r"^(?!xn--|sthree-|amzn-s3-demo-)(?!.*\.\.)(?![0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$)"
                        r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Names whose service is narrower than the common rule above: (pattern, what the error says).
_NAME_RULES = {
    "table_name": (re.compile(r"^[A-Za-z0-9_.-]{3,255}$"), "a DynamoDB table name has 3 to 255 letters, digits, _ . -"),
    "lambda_name": (re.compile(r"^[A-Za-z0-9_-]{1,64}$"), "a Lambda function name has 1 to 64 letters, digits, _ -"),
}
# The services the pipeline's roles are for: each role is named <PROJECT>-<service> (bootstrap/iam.py), and IAM
# takes role names of up to 64 characters.
ROLE_SERVICES = ("lambda", "pipes", "firehose", "glue")
IAM_ROLE_NAME_MAX = 64
# CloudWatch Logs PutRetentionPolicy takes only these (logs/latest/APIReference/API_PutRetentionPolicy.html).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)


@dataclass(frozen=True)
class Settings:
    """Every setting of the stack; env var = field name in upper case (e.g. SHARD_COUNT)."""

    target: str = "embedded"
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 4566
    endpoint: str = ""  # compose: the emulator's address inside the compose network
    state_dir: Path = field(default_factory=lambda: default_state_dir(ROOT))
    project: str = "sales-orders-cdc"

    table_name: str = "sales_orders"
    stream_name: str = "sales-orders-cdc"
    shard_count: int = 1
    lake_bucket: str = ""  # default: sales-orders-lake-<account id>
    results_bucket: str = ""  # default: sales-orders-athena-<account id>
    lake_prefix: str = "orders/"
    error_prefix: str = "errors/"
    output_format: str = "parquet"

    lambda_name: str = "sales-orders-transform"
    lambda_timeout_s: int = 60
    lambda_memory_mb: int = 256
    pipe_name: str = "sales-orders-pipe"
    pipe_batch_size: int = 500  # one PutRecords (max 500) and one checkpoint per batch
    # MaximumBatchingWindowInSeconds: how long the pipe may hold a batch that is not full. 0 sends what each
    # read finds, so a change waits for no window on top of the stream's 4 reads/s (docs/decisions.md).
    pipe_batching_window_s: int = 0
    # The pipe gives up on a record after this many retries, or once it is this old, and sends it to its
    # dead-letter queue. The age stays well under DynamoDB Streams' 24 h retention, so the records a
    # dead letter points at can still be read back for hours (AWS's troubleshooting advice).
    pipe_max_retry_attempts: int = 10
    pipe_max_record_age_s: int = 6 * 3600
    delivery_stream: str = "sales-orders-firehose"
    buffer_size_mb: int = 64  # SizeInMBs is an integer
    buffer_interval_s: int = -1  # -1: 60 s (AWS's minimum with dynamic partitioning), 5 s when local-fast
    processor_buffer_mb: float = 1
    processor_interval_s: int = -1  # -1: 60 s (AWS's default), 1 s when local-fast
    # Emulated targets only: buffer below AWS's dynamic-partitioning minimums (5 s flushes by default) so a
    # demo is quick; `plan` names each such value a local-only deviation. 0: buffer exactly as TARGET=aws
    # would, and refuse what AWS refuses. No effect on aws.
    local_fast_buffers: bool = True
    lambda_retries: int = 3
    max_active_partitions: int = 500

    glue_database: str = "sales_orders_db"
    glue_table: str = "sales_orders_cdc"
    crawler_name: str = "sales-orders-crawler"
    workgroup: str = "sales-orders-wg"
    log_retention_days: int = 14
    lake_noncurrent_days: int = 7  # replaced lake objects (compaction's inputs) stay recoverable this long
    results_expiration_days: int = 30  # Athena query results
    athena_scan_limit_gb: int = 10  # the workgroup cancels a query scanning more (~$0.05 at $5/TB)
    # aws only: SSE-KMS instead of SSE-S3, a crawler schedule, Athena partition projection instead of a crawler.
    kms_key_arn: str = ""
    crawler_schedule: str = ""
    partition_projection: bool = False
    # make backfill (docs/backfill.md): parallel Scan segments on the emulated targets, items per Scan page
    # and per lake object; on aws, where ExportTableToPointInTime writes its files in the lake bucket.
    # Scan's TotalSegments: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html
    backfill_segments: int = 4
    backfill_page_items: int = 1000
    backfill_export_prefix: str = "exports/"

    @property
    def emulated(self) -> bool:
        return self.target in EMULATED_TARGETS

    @property
    def endpoint_url(self) -> str | None:
        """The emulator's endpoint; None on aws so boto3 uses the real one."""
        if not self.emulated:
            return None
        return self.endpoint or f"http://{self.host}:{self.port}"

    @property
    def local_fast(self) -> bool:
        """May this run buffer below what AWS allows (emulated targets with LOCAL_FAST_BUFFERS=1)?"""
        return self.emulated and self.local_fast_buffers

    @property
    def flush_interval_s(self) -> int:
        if self.buffer_interval_s >= 0:
            return self.buffer_interval_s
        return LOCAL_FAST_FLUSH_S if self.local_fast else AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S

    @property
    def invoke_interval_s(self) -> int:
        if self.processor_interval_s >= 0:
            return self.processor_interval_s
        return LOCAL_FAST_INVOKE_S if self.local_fast else 60

    def lake_bucket_for(self, account_id: str) -> str:
        return self.lake_bucket or f"sales-orders-lake-{account_id}"

    def results_bucket_for(self, account_id: str) -> str:
        return self.results_bucket or f"sales-orders-athena-{account_id}"

    @property
    def runner_dir(self) -> Path:
        """Where runner specs, checkpoints, status files, locks and logs live (common/state_dir.py)."""
        return runners_dir(self.state_dir)


def _num(value: float) -> str:
    """A bound as people write it: 65,535, 1,000,000, 0.2."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


_INT_RE = re.compile(r"-?[0-9]+")
_REGION_RE = re.compile(r"[a-z]{2,}(-[a-z]+)+-[0-9]+")  # us-east-1, us-gov-west-1, eusc-de-east-1
_FLOAT_RE = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _noun(name: str, kind: type, from_env: bool) -> str:
    """What a setting must be, with its range when it has one."""
    lo_hi = RANGES.get(name)
    span = f" from {_num(lo_hi[0])} to {_num(lo_hi[1])}" if lo_hi else ""
    if kind is int:
        return f"a whole number{span}"
    if kind is float:
        return f"a number{span}"
    if kind is bool:
        return "1 or 0 (true/false, yes/no)" if from_env else "true or false"
    return "a path" if kind is Path else "a string"


def _coerce(name: str, raw: Any, kind: type, from_env: bool) -> Any:
    """The value of a setting, strictly: a bool is not a number, 1.9 is not a whole number, '2_0' is not 20.

    Environment values are strings and parse strictly; TOML values (and overrides) must have the type.
    """
    value: Any = None
    if from_env:
        text = str(raw)
        if kind is int and _INT_RE.fullmatch(text):
            value = int(text)
        elif kind is float and _FLOAT_RE.fullmatch(text) and math.isfinite(float(text)):
            value = float(text)
        elif kind is bool and text.lower() in _TRUE + _FALSE:
            value = text.lower() in _TRUE
        elif kind is str:
            value = text
        elif kind is Path:
            value = _path(name, text)
    elif kind is bool:
        value = raw if isinstance(raw, bool) else None
    elif isinstance(raw, bool):
        value = None  # True is not 1
    elif kind is int and isinstance(raw, int):
        value = raw
    elif kind is int and isinstance(raw, float) and raw.is_integer():
        value = int(raw)  # 2.0 is 2; 1.9 is refused, never truncated
    elif kind is float and isinstance(raw, int | float) and math.isfinite(raw):
        value = float(raw)
    elif kind is str and isinstance(raw, str):
        value = raw
    elif kind is Path and isinstance(raw, str | Path):
        value = _path(name, str(raw))
    if value is None:
        raise ConfigError(f"{name.upper()}={raw!r} is not valid; set it to {_noun(name, kind, from_env)}")
    return value


def _path(name: str, text: str) -> Path | None:
    """A path setting, `~` expanded; None (refused) when empty, which would mean the current directory."""
    if not text.strip():
        return None
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of no such user
        raise ConfigError(f"{name.upper()}={text!r} names the home of an unknown user; set an absolute path") from None


_KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "Path": Path, "bool": bool}


def _read_config_file(path: Path) -> dict[str, Any]:
    """The TOML file PIPELINE_CONFIG names; one line for a file that is missing, unreadable or not TOML."""
    fix = "fix it or unset PIPELINE_CONFIG"
    if not path.is_file():
        raise ConfigError(f"PIPELINE_CONFIG={path} does not exist; point it at a TOML file or unset it")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"PIPELINE_CONFIG={path} cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"PIPELINE_CONFIG={path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          f"save it as UTF-8 or unset PIPELINE_CONFIG") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"PIPELINE_CONFIG={path} is not valid TOML ({' '.join(str(exc).split())}); {fix}") from None


def load_settings(
    env: Mapping[str, str] | None = None, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Build and validate settings: explicit overrides > environment > TOML file > defaults."""
    env = os.environ if env is None else env
    values: dict[str, tuple[Any, bool]] = {}  # name -> (raw value, came from the environment)
    path = config_file or (Path(env["PIPELINE_CONFIG"]) if env.get("PIPELINE_CONFIG") else None)
    if path is not None:
        values.update((k, (v, False)) for k, v in _read_config_file(path).items())
    for f in fields(Settings):
        key = f.name.upper()
        if key in env and env[key] != "":
            values[f.name] = (env[key], True)
    if "region" not in values:
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = (region, True)
    values.update({k: (v, False) for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - {f.name for f in fields(Settings)})
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} in the config file; remove it or fix its name")
    kinds = {f.name: _KINDS[str(f.type)] for f in fields(Settings)}
    settings = Settings(**{k: _coerce(k, raw, kinds[k], from_env) for k, (raw, from_env) in values.items()})
    validate(settings)
    return settings


def parse_option(flag: str, raw: Any, kind: type, lo: float, hi: float, *, above: bool = False,
                 unit: str = "") -> Any:
    """A command-line option's value, parsed as strictly as a setting: one line naming it and its range.

    `above`: the range excludes `lo` (a rate or a duration must be more than 0). `unit` says what it counts.
    """
    if kind is int:
        noun = f"a whole number from {_num(lo)} to {_num(hi)}"
    else:
        noun = f"a number {'above' if above else 'from'} {_num(lo)} {'and at most' if above else 'to'} {_num(hi)}"
    value: Any = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, kind) or (kind is float and isinstance(raw, int)):
        value = kind(raw)
    elif isinstance(raw, str) and kind is int and _INT_RE.fullmatch(raw):
        value = int(raw)
    elif isinstance(raw, str) and kind is float and _FLOAT_RE.fullmatch(raw):
        value = float(raw)
    if value is not None and (not math.isfinite(value) or not (lo < value if above else lo <= value) or value > hi):
        value = None
    if value is None:
        raise ConfigError(f"{flag} must be {noun}{f' ({unit})' if unit else ''}, got {str(raw)!r}")
    return value


def writable_state_dir(s: Settings) -> Path:
    """Create the state directory (and runners/ in it) if needed; one line when it cannot be written."""
    try:
        s.runner_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=s.state_dir):
            pass
    except OSError as exc:
        raise ConfigError(f"STATE_DIR={s.state_dir} is not a writable directory ({exc.strerror or exc}); "
                          "set STATE_DIR to a directory you can write") from None
    return s.state_dir


def validate(s: Settings) -> Settings:
    """Raise ConfigError naming the first bad setting and what it may be."""
    if s.target not in TARGETS:
        raise ConfigError(f"TARGET={s.target!r} is not a target; use one of {', '.join(TARGETS)}")
    if s.output_format not in OUTPUT_FORMATS:
        raise ConfigError(f"OUTPUT_FORMAT={s.output_format!r} is unknown; use one of {', '.join(OUTPUT_FORMATS)}")
    for name, (lo, hi) in RANGES.items():
        value = getattr(s, name)
        if name in ("buffer_interval_s", "processor_interval_s") and value == -1:
            continue
        if not lo <= value <= hi:
            reason = f" ({RANGE_REASONS[name]})" if name in RANGE_REASONS else ""
            allows = "use" if name == "port" else "AWS allows"  # the one range that is not an AWS limit
            raise ConfigError(f"{name.upper()}={value:g} is out of range; {allows} {_num(lo)} to {_num(hi)}{reason}")
    age_lo, age_hi = PIPE_RECORD_AGE_RANGE
    if s.pipe_max_record_age_s != -1 and not age_lo <= s.pipe_max_record_age_s <= age_hi:
        raise ConfigError(f"PIPE_MAX_RECORD_AGE_S={s.pipe_max_record_age_s} is out of range; AWS allows -1 (no limit) "
                          f"or {_num(age_lo)} to {_num(age_hi)}")
    refused = aws_buffering_refusals(s)
    if refused and not s.local_fast:
        fix = ", or set LOCAL_FAST_BUFFERS=1 (emulated targets only)" if s.emulated else ""
        raise ConfigError(f"{refused[0]}; raise it{fix}")
    if s.endpoint and s.target != "compose":
        raise ConfigError("ENDPOINT is only for TARGET=compose (the runner container); unset it")
    if not _REGION_RE.fullmatch(s.region):
        raise ConfigError(f"AWS_REGION={s.region!r} is not an AWS Region; use one like us-east-1")
    if s.emulated and s.host not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"HOST={s.host!r}: the emulator binds to loopback only; use 127.0.0.1")
    for name in ("lake_bucket", "results_bucket"):
        value = getattr(s, name)
        if value and (not _BUCKET_RE.match(value) or value.startswith("iceberg") or value.endswith(_BUCKET_SUFFIXES)):
            raise ConfigError(
                f"{name.upper()}={value!r} is not a valid S3 bucket name; use 3-63 lowercase letters, "
                "digits, dots or hyphens, not an IP address, not starting with 'iceberg', xn--, sthree- or "
                f"amzn-s3-demo-, not ending with {', '.join(_BUCKET_SUFFIXES)}"
            )
    if s.lake_bucket and s.lake_bucket == s.results_bucket:
        raise ConfigError(f"RESULTS_BUCKET={s.results_bucket!r} is LAKE_BUCKET too; the results bucket expires its "
                          "objects after RESULTS_EXPIRATION_DAYS, so give it a bucket of its own")
    for name in ("table_name", "stream_name", "lambda_name", "pipe_name", "delivery_stream",
                 "glue_database", "glue_table", "crawler_name", "workgroup", "project"):
        pattern, rule = _NAME_RULES.get(name, (_NAME_RE, "use 1-64 letters, digits, _ . -"))
        if not pattern.match(getattr(s, name)):
            raise ConfigError(f"{name.upper()}={getattr(s, name)!r} is not a valid name; {rule}")
    longest = max(ROLE_SERVICES, key=len)
    if len(f"{s.project}-{longest}") > IAM_ROLE_NAME_MAX:
        raise ConfigError(f"PROJECT={s.project!r} is too long; the role names built from it (<PROJECT>-{longest}) "
                          f"may have {IAM_ROLE_NAME_MAX} characters: use at most "
                          f"{IAM_ROLE_NAME_MAX - len(longest) - 1}")
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        raise ConfigError(f"LOG_RETENTION_DAYS={s.log_retention_days} is not a retention CloudWatch Logs offers; "
                          f"use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    for name in ("lake_prefix", "error_prefix", "backfill_export_prefix"):
        value = getattr(s, name)
        if not value.endswith("/") or value.startswith("/"):
            raise ConfigError(f"{name.upper()}={value!r} must be a relative S3 prefix ending in '/'")
    if s.lake_prefix.startswith(s.error_prefix) or s.error_prefix.startswith(s.lake_prefix):
        raise ConfigError("ERROR_PREFIX must not overlap LAKE_PREFIX; give errors their own prefix")
    for name in ("lake_prefix", "error_prefix"):
        other = getattr(s, name)
        if s.backfill_export_prefix.startswith(other) or other.startswith(s.backfill_export_prefix):
            raise ConfigError(f"BACKFILL_EXPORT_PREFIX must not overlap {name.upper()}; give exports their own prefix")
    return s


def aws_buffering_refusals(s: Settings) -> list[str]:
    """The buffering hints AWS refuses with dynamic partitioning (always on in this pipeline), one line each."""
    refused = []
    if s.buffer_size_mb < AWS_DYNAMIC_PARTITIONING_MIN_BUFFER_MB:
        refused.append(f"BUFFER_SIZE_MB={s.buffer_size_mb:g} is below AWS's {AWS_DYNAMIC_PARTITIONING_MIN_BUFFER_MB} "
                       "MiB minimum with dynamic partitioning")
    if s.flush_interval_s < AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S:
        refused.append(f"BUFFER_INTERVAL_S={s.flush_interval_s} is below AWS's "
                       f"{AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S} s minimum with dynamic partitioning")
    return refused


def with_overrides(s: Settings, **changes: Any) -> Settings:
    """A validated copy with some fields changed (tests, and per-command flags)."""
    return validate(replace(s, **changes))
