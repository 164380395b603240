"""Figure 1: records/s through transform.handler.handler vs bare JSON round trips of the same payloads.

Input: realistic stream records (generator -> DynamoDB stream record -> Pipe event -> Firehose
event of 500 records), built once, outside the timing. The reference is the least work any
JSON-to-JSON Firehose transform does per record: base64-decode, json.loads, json.dumps,
base64-encode. The handler also unmarshals DynamoDB JSON, keeps numbers exact, builds the row and
its partition keys and checks every field; the target is >= 0.5x the reference.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections import Counter
from typing import Any

from bench.profiling import profile_call
from bench.records import firehose_events, kinesis_payloads
from bench.report import Figure, Target, rate
from bench.timing import alternate
from transform.handler import handler

TARGET = Target("ratio", ">=", 0.5)


def run_handler(events: list[dict[str, Any]]) -> Counter[str]:
    results: Counter[str] = Counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the handler logs one line per invocation
        for event in events:
            results.update(r["result"] for r in handler(event, None)["records"])
    return results


def run_reference(events: list[dict[str, Any]]) -> int:
    done = 0
    for event in events:
        out = []
        for record in event["records"]:
            document = json.loads(base64.b64decode(record["data"]))
            out.append(base64.b64encode(json.dumps(document, separators=(",", ":")).encode()))
        done += len(out)
    return done


def measure(records: int, batch: int = 500, repeats: int = 3, seed: int = 7,
            profile: bool = False) -> tuple[Figure, dict[str, Any], str]:
    events = firehose_events(kinesis_payloads(records, seed), batch)
    results = run_handler(events[:1])  # warm up, and check the input transforms
    pair = alternate(lambda: run_handler(events), lambda: run_reference(events), repeats)
    results = run_handler(events[:20])
    figure = Figure(
        "transform", "transform handler", rate(records, pair.best_subject), "records/s",
        rate(records, pair.best_reference), "bare base64+json.loads+json.dumps+base64 (records/s)", TARGET,
        notes=f"{records:,} records in invokes of {batch}, best of {len(pair.subject_s)}",
    )
    section = {"records": records, "batch": batch, "subject_s": pair.subject_s, "reference_s": pair.reference_s,
               "results_sample": dict(results), "payload_bytes_mean": round(
                   sum(len(r["data"]) for e in events[:20] for r in e["records"]) * 3 / 4
                   / max(sum(len(e["records"]) for e in events[:20]), 1))}
    text = ""
    if profile or figure.met is False:
        sample = events[: max(len(events) // 4, 1)]
        _, text = profile_call(lambda: run_handler(sample))
    return figure, section, text
