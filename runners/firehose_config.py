"""Read a CreateDeliveryStream request into the few numbers and names the firehose runner needs.

Besides the request, the runner's spec file holds what AWS would describe of the delivery stream
(common/state_dir.py DESCRIPTION, written by bootstrap/resources/local.py): its version, named in
every object, and where each shard starts reading (LATEST as of the delivery stream's creation).

Defaults and ranges are AWS's: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html
(processor buffer 0.2-3 MB, default 1 MB / 60 s), NumberOfRetries default 3
(https://docs.aws.amazon.com/firehose/latest/APIReference/API_ProcessorParameter.html) and
https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html (1-128 MiB, 0-900 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.state_dir import DESCRIPTION

MIB = 1024 * 1024
LAMBDA_SYNC_PAYLOAD_MAX = 6 * MIB  # Lambda's synchronous invocation payload limit


@dataclass(frozen=True)
class FirehoseConfig:
    delivery_stream: str
    source_stream: str
    bucket: str
    prefix: str
    error_prefix: str
    buffer_bytes: int
    buffer_interval_s: float
    parquet: bool
    gzip: bool
    append_delimiter: bool
    file_extension: str
    lambda_arn: str
    lambda_retries: int
    processor_bytes: int
    processor_interval_s: float
    max_active_partitions: int = 500
    version_id: int = 1  # the delivery stream's version, in every object name (one more per update)
    # Where each shard starts without a checkpoint: its last sequence number when the delivery stream was
    # created (None: it held nothing; a shard missing here was created later). None: not known (a spec
    # written before these were recorded): every shard then starts at TRIM_HORIZON.
    starting_positions: dict[str, str | None] | None = None


def _processor_params(processors: list[dict[str, Any]], kind: str) -> dict[str, str] | None:
    for p in processors:
        if p["Type"] == kind:
            return {x["ParameterName"]: x["ParameterValue"] for x in p.get("Parameters", [])}
    return None


def parse_config(spec: dict[str, Any], max_active_partitions: int = 500) -> FirehoseConfig:
    dest = spec["ExtendedS3DestinationConfiguration"]
    processing = dest.get("ProcessingConfiguration", {})
    processors = processing.get("Processors", []) if processing.get("Enabled") else []
    lam = _processor_params(processors, "Lambda")
    if lam is None:
        raise ValueError("the delivery stream has no Lambda processor; the local runner needs one")
    parquet = bool(dest.get("DataFormatConversionConfiguration", {}).get("Enabled"))
    gzip = dest.get("CompressionFormat", "UNCOMPRESSED") == "GZIP"
    default_ext = ".parquet" if parquet else (".gz" if gzip else "")
    hints = dest.get("BufferingHints", {})
    retries = int(lam.get("NumberOfRetries", 3))
    if retries < 0:
        raise ValueError(f"NumberOfRetries={retries}: the Lambda processor's retries cannot be negative")
    description = spec.get(DESCRIPTION) or {}
    starting = description.get("StartingSequenceNumbers")
    return FirehoseConfig(
        delivery_stream=spec["DeliveryStreamName"],
        source_stream=spec["KinesisStreamSourceConfiguration"]["KinesisStreamARN"].split("/", 1)[1],
        bucket=dest["BucketARN"].split(":::", 1)[1],
        prefix=dest.get("Prefix", ""),
        error_prefix=dest.get("ErrorOutputPrefix", ""),
        buffer_bytes=int(float(hints.get("SizeInMBs", 5)) * MIB),
        buffer_interval_s=float(hints.get("IntervalInSeconds", 300)),
        parquet=parquet,
        gzip=gzip and not parquet,
        append_delimiter=_processor_params(processors, "AppendDelimiterToRecord") is not None,
        file_extension=dest.get("FileExtension", default_ext),
        lambda_arn=lam["LambdaArn"],
        lambda_retries=retries,
        processor_bytes=int(float(lam.get("BufferSizeInMBs", 1)) * MIB),
        processor_interval_s=float(lam.get("BufferIntervalInSeconds", 60)),
        max_active_partitions=max_active_partitions,
        version_id=int(description.get("VersionId", 1)),
        starting_positions=dict(starting) if isinstance(starting, dict) else None,
    )
