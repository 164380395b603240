"""Where the local runners differ from AWS's documented behaviour, and why: one table, rendered into README.md.

Each row is a `Deviation`; add one beside the code that deviates. The README's block between the
deviations markers is generated from `DEVIATIONS`, and a test (tests/unit/conformance/test_deviations.py)
fails when it differs; regenerate it with

    .venv/bin/python -m common.deviations --write
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- deviations:start -->"
END = "<!-- deviations:end -->"
WRITE_COMMAND = ".venv/bin/python -m common.deviations --write"


@dataclass(frozen=True)
class Deviation:
    area: str
    aws: str  # what AWS does (documented)
    local: str  # what the emulated targets do instead
    why: str
    where: str = ""  # the module or document that holds the detail


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "EventBridge Pipe",
        "The pipe reads the DynamoDB stream and puts each record into Kinesis.",
        "The pipe runner does it, from the very CreatePipe request the `aws` target sends.",
        "The emulator's Pipes hold records and deliver none.",
        "runners/pipe.py",
    ),
    Deviation(
        "Firehose",
        "The delivery stream reads Kinesis, invokes the Lambda, buffers per partition, converts to Parquet and "
        "writes objects and error output.",
        "The firehose runner does it, from the very CreateDeliveryStream request.",
        "The emulator's Firehose writes one object per record, with no buffering and no error output.",
        "runners/firehose.py",
    ),
    Deviation(
        "Glue crawler",
        "The crawler (a catalog target on the bootstrap's table, schema changes logged) adds the table's "
        "partitions.",
        "The local crawler, from the very same CreateCrawler request, lists the lake's prefixes and adds the "
        "partitions; the table is the plan's on every target.",
        "The emulator's crawler only flips its state on a timer.",
        "runners/crawler.py",
    ),
    Deviation(
        "Buffering",
        "With dynamic partitioning, buffering hints under 64 MiB / 60 s are refused; there is no zero buffering.",
        "With LOCAL_FAST_BUFFERS=1 (the emulated targets' default) objects are flushed every 5 s; `make plan` "
        "names each such value a local-only deviation.",
        "A demo finishes in seconds; LOCAL_FAST_BUFFERS=0 buffers exactly as AWS does.",
        "common/config.py",
    ),
    Deviation(
        "Firehose reads",
        "Firehose calls Kinesis GetRecords once per second for each shard (firehose/latest/dev/"
        "writing-with-kinesis-streams.html).",
        "The firehose runner reads a shard that has records up to 5 times a second (Kinesis's own limit per "
        "shard), and once a second when it is idle.",
        "A busy shard's records reach their buffer sooner: local freshness is better than AWS's by up to "
        "about 0.8 s (`make bench` prints both floors: p95 1.29 s at 5 reads/s, 2.09 s at 1/s, for a 1 s buffer).",
        "runners/shards.py",
    ),
    Deviation(
        "Firehose delivery retries",
        "With dynamic partitioning, Firehose retries delivering to an S3 prefix for RetryOptions.DurationInSeconds "
        "(300 s in the spec; firehose/latest/APIReference/API_RetryOptions.html), and a failed S3 delivery "
        "(a missing bucket or a denied write included) is retried, not transformed again (firehose/latest/dev/"
        "retry.html).",
        "The firehose runner retries a failed PutObject 6 times (a few seconds); then the pass fails and is read "
        "again from its checkpoint, so the transform runs again for those records. A missing bucket or a denied "
        "write stops the runner with a one-line error.",
        "Nothing is lost either way (at-least-once); the emulator's S3 is in its own process and fails only in "
        "the fault tests. Only an outage of more than a few seconds shows the difference (transform logs and "
        "error objects may repeat).",
        "runners/firehose.py",
    ),
    Deviation(
        "Crawler partitions",
        "With CrawlerOutput.Partitions.AddOrUpdateBehavior InheritFromTable (the spec's), a crawl updates new and "
        "existing partitions with the table's metadata (glue/latest/dg/crawler-schema-changes-prevent.html).",
        "The local crawler builds each new partition's StorageDescriptor from the table's columns and format, and "
        "leaves existing partitions as they are: after a column is added, older partitions keep the older "
        "columns in Glue.",
        "The local mirror of Athena reads the table's columns, never a partition's, so queries are the same; a "
        "tool that reads partitions from Glue sees the difference.",
        "runners/crawler.py",
    ),
    Deviation(
        "Pipe dead letters",
        "A record the pipe cannot deliver goes to the SQS queue (or SNS topic) of DeadLetterConfig as a message "
        "that points into the stream (shard, sequence numbers), not the record.",
        "An S3 object under `errors/pipe-dead-letter/` with AWS's message plus `errorCode`, `errorMessage` and "
        "`originalEvents` (the events themselves); the planned queue receives nothing.",
        "An SQS message holds at most 1 MiB, so the records that most need a dead letter (over Kinesis's 1 MiB) "
        "could not carry their payload, and the stream keeps records only 24 h.",
        "runners/pipe.py",
    ),
    Deviation(
        "Undeliverable pipe records",
        "A record Kinesis refuses is retried up to MaximumRetryAttempts, then reported as RetryAttemptsExhausted.",
        "A record no retry can deliver (over 1 MiB as sent, a partition key missing or outside 1-256 characters) "
        "is dead-lettered at once with that condition.",
        "Those retries cannot succeed; the record's own reason is kept instead.",
        "runners/pipe.py",
    ),
    Deviation(
        "Pipe and Firehose logs",
        "The pipe logs ERROR lines to its log group (LogConfiguration); Firehose logs delivery and Lambda "
        "invocation errors to its own (CloudWatchLoggingOptions).",
        "Each runner logs to `<state>/runners/<name>.log`, and `make status` shows its errors; nothing writes "
        "to the pipe's or the delivery stream's log group.",
        "The runners are local processes; the function's own log group (/aws/lambda/<fn>) is written as on AWS.",
        "runners/service.py",
    ),
    Deviation(
        "Reasons of failed records",
        "A `processing-failed` record carries Lambda.ProcessingFailedStatus and a fixed message; the function's "
        "reason is only in its log group, and nothing joins the two.",
        "The same objects and log lines; `make errors` joins each record with its reason, on every target, by "
        "the SHA-256 of its data, which the transform logs with each reason.",
        "The error record has no recordId; the function's log group is the same on AWS and in the emulator.",
        "runners/error_output.py",
    ),
    Deviation(
        "Error codes AWS does not document",
        "The Lambda invocation errors are documented; codes for format-conversion and dynamic-partitioning "
        "failures, and for invoke failures outside that table, are not.",
        "Such records carry DataFormatConversion.InvalidSchema, DynamicPartitioning.MissingKey, "
        "DynamicPartitioning.ActivePartitionExceeded, or `Lambda.` and Lambda's exception name "
        "(e.g. Lambda.ServiceException).",
        "A code a reader can search for beats a guess at AWS's undocumented one.",
        "runners/error_output.py",
    ),
    Deviation(
        "Dynamic-partitioning error output",
        "Records beyond the active partitions go to `activePartitionExceeded`; records whose partition keys "
        "cannot be evaluated go to the error prefix \"organized based on the error type\"; neither record's "
        "fields are printed.",
        "A missing partition key goes to `processing-failed`; both kinds of record have the processing-failed "
        "fields.",
        "The closest documented error-output type and shape; the keys come from the Lambda.",
        "runners/error_output.py",
    ),
    Deviation(
        "Record format conversion",
        "Conversion reads the Glue table's latest version (SchemaConfiguration VersionId LATEST); AWS does not "
        "say how soon an UpdateTable is seen.",
        "The firehose runner reads the table at its first flush, then every 60 s, and at once when rows carry an "
        "attribute it has not looked up; until the table exists it converts with the declared contract.",
        "A column a user adds reaches the next objects within a minute, as it would on AWS.",
        "lake/glue_schema.py",
    ),
    Deviation(
        "Nested attributes as text",
        "The OpenX JSON SerDe writes a nested value into a `string` column as its JSON text.",
        "The same, written by Python's json: key order and number spelling may differ from AWS's text.",
        "The SerDe's exact text is not documented; compact, deterministic JSON is the closest.",
        "lake/encoding.py",
    ),
    Deviation(
        "Lambda runtime",
        "Lambda runs the deployed zip in its managed runtime.",
        "The emulator runs the very same zip in a local worker process.",
        "No containers are needed on the machine.",
        "bootstrap/spec.py",
    ),
    Deviation(
        "Emulator patches",
        "A DynamoDB stream keeps its records for 24 h, whatever happens to the service.",
        "The embedded emulator starts through pinned patches; the first keeps stream records across a persisted "
        "restart.",
        "An emulator bug is fixed where it is, so the runners code against AWS's documented behaviour only.",
        "docs/emulator-patches.md",
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: tuple[Deviation, ...] = DEVIATIONS) -> str:
    """The Markdown table between the README's markers (markers included)."""
    lines = [START, "| area | AWS does | locally | why | see |", "|---|---|---|---|---|"]
    for row in rows:
        where = f"`{row.where}`" if row.where else ""
        lines.append(f"| {' | '.join(_cell(c) for c in (row.area, row.aws, row.local, row.why))} | {where} |")
    lines.append(END)
    return "\n".join(lines)


def readme_block(text: str) -> str:
    """The README's current block, markers included; ValueError when the markers are missing."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {START} ... {END} block")
    return text[start:end + len(END)]


def with_table(text: str) -> str:
    """README text with its deviations block replaced by the rendered table."""
    return text.replace(readme_block(text), render(), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.deviations", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md's deviations block")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    if args.write:
        updated = with_table(text)
        if updated != text:
            args.readme.write_text(updated, encoding="utf-8")
        print(f"{args.readme}: deviations table {'written' if updated != text else 'already current'}")
        return 0
    if readme_block(text) != render():
        print(f"{args.readme}: the deviations table is stale; run `{WRITE_COMMAND}`", file=sys.stderr)
        return 1
    print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
