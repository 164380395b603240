"""The Firehose transform Lambda (transform/handler.py) against AWS-shaped stream records.

Fixtures under tests/fixtures/stream_records/ are DynamoDB stream records as a Pipe delivers them
(the shape of https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-dynamodb.html),
plus the Firehose transformation event that carries them to the Lambda.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import json
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from transform.handler import (
    RecordError,
    build_row,
    decode_record,
    encode_row,
    failure_reason,
    format_timestamp,
    handler,
    partition_keys,
    transform_record,
    unmarshal,
)

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "stream_records"
ARRIVAL_MS = 1767607091871  # 2026-01-05T09:58:11.871Z


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def b64(payload: bytes | str) -> str:
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    return base64.b64encode(raw).decode("ascii")


def firehose_record(stream_record: Any, record_id: str = "r-1", arrival_ms: int = ARRIVAL_MS) -> dict[str, Any]:
    """A Firehose input record around a stream record (a dict is sent as JSON, str/bytes as they are)."""
    payload = json.dumps(stream_record) if isinstance(stream_record, dict) else stream_record
    return {"recordId": record_id, "approximateArrivalTimestamp": arrival_ms, "data": b64(payload)}


def stream_record(event_name: str = "INSERT", **dynamodb: Any) -> dict[str, Any]:
    """A minimal stream record; keyword arguments replace or add StreamRecord fields."""
    change = {
        "ApproximateCreationDateTime": 1767607091,
        "Keys": {"order_id": {"S": "ord-1"}},
        "SequenceNumber": "1130700000000041846562791",
        "SizeBytes": 60,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name != "REMOVE":
        change["NewImage"] = {"order_id": {"S": "ord-1"}, "status": {"S": "PAID"}}
    change.update(dynamodb)
    return {
        "eventID": "ev-1",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/sales_orders/stream/2026-01-05T09:12:44.318",
    }


def row_text(output_record: dict[str, Any]) -> str:
    assert output_record["result"] == "Ok", output_record
    return base64.b64decode(output_record["data"], validate=True).decode("utf-8")


def row_of(output_record: dict[str, Any]) -> dict[str, Any]:
    """Parsed row with exact numbers: a decimal stays Decimal, so '19.99' vs 19.99 cannot pass unnoticed."""
    return json.loads(row_text(output_record), parse_float=Decimal)


# --- the recorded fixtures -------------------------------------------------------------------


def test_insert_fixture_becomes_this_exact_row() -> None:
    output = transform_record(firehose_record(fixture("insert_order.json")))

    assert output["recordId"] == "r-1"
    assert output["metadata"] == {"partitionKeys": {"year": "2026", "month": "01", "day": "05"}}
    assert row_text(output) == (
        '{"order_id":"ord-7f3c9a2e","customer_id":"cust-00421","customer_name":"Zoë Lefèvre",'
        '"customer_region":"EMEA","product_id":"prod-0193","product_name":"Espresso Machine \\"Barista Pro\\"",'
        '"category":"Home & Kitchen","quantity":2,"unit_price":189.99,"discount":0.1,"order_total":341.98,'
        '"currency":"EUR","status":"PLACED","payment_method":"credit_card","channel":"web",'
        '"order_ts":"2026-01-05T09:58:11.123Z","updated_ts":"2026-01-05T09:58:11.123Z",'
        '"event_type":"INSERT","event_id":"3f1c2b9e8d7a6f5e4d3c2b1a09f8e7d6",'
        '"sequence_number":"1130700000000041846562791","event_ts":"2026-01-05T09:58:11.000Z",'
        '"arrival_ts":"2026-01-05T09:58:11.871Z","is_deleted":false}'
    )


def test_modify_fixture_takes_the_new_image_and_truncates_the_time_to_milliseconds() -> None:
    output = transform_record(firehose_record(fixture("modify_order.json"), arrival_ms=1767607512903))

    row = row_of(output)
    assert row["status"] == "PAID"
    assert row["updated_ts"] == "2026-01-05T10:05:12.340Z"
    assert row["unit_price"] == Decimal("189.99")
    assert (row["event_type"], row["is_deleted"]) == ("MODIFY", False)
    # ApproximateCreationDateTime 1767607512.345678 s
    assert row["event_ts"] == "2026-01-05T10:05:12.345Z"
    assert row["arrival_ts"] == "2026-01-05T10:05:12.903Z"
    assert output["metadata"] == {"partitionKeys": {"year": "2026", "month": "01", "day": "05"}}


def test_remove_fixture_keeps_the_old_image_marked_deleted_in_the_day_it_happened() -> None:
    output = transform_record(firehose_record(fixture("remove_order.json"), arrival_ms=1767225600114))

    assert row_of(output) == {
        "order_id": "ord-1b2d4e6f",
        "customer_id": "cust-00057",
        "customer_name": "Kenji Watanabe",
        "customer_region": "APAC",
        "product_id": "prod-0007",
        "product_name": "USB-C Hub",
        "category": "Electronics",
        "quantity": 1,
        "unit_price": Decimal("39.5"),
        "discount": 0,
        "order_total": Decimal("39.5"),
        "currency": "USD",
        "status": "CANCELLED",
        "payment_method": "paypal",
        "channel": "mobile",
        "order_ts": "2025-12-31T23:41:07.550Z",
        "updated_ts": "2025-12-31T23:59:58.002Z",
        "event_type": "REMOVE",
        "event_id": "e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4",
        "sequence_number": "1129600000000041846551337",
        "event_ts": "2025-12-31T23:59:59.900Z",
        "arrival_ts": "2026-01-01T00:00:00.114Z",
        "is_deleted": True,
    }
    # Partitioned by the event time, not by when Kinesis received it (already the next day).
    assert output["metadata"] == {"partitionKeys": {"year": "2025", "month": "12", "day": "31"}}


def test_recorded_firehose_event_answers_every_record_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    event = fixture("firehose_event.json")

    response = handler(event, None)

    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    assert [r["result"] for r in response["records"]] == ["Ok", "Ok", "Ok"]
    assert [row_of(r)["event_type"] for r in response["records"]] == ["REMOVE", "INSERT", "MODIFY"]
    assert [r["metadata"]["partitionKeys"]["day"] for r in response["records"]] == ["31", "05", "05"]
    # The event carries exactly the three fixture stream records.
    carried = [json.loads(base64.b64decode(r["data"])) for r in event["records"]]
    assert carried == [fixture("remove_order.json"), fixture("insert_order.json"), fixture("modify_order.json")]
    assert capsys.readouterr().out == ("invocationId=5f3a0c2e-9b1d-4c7a-8e6f-1a2b3c4d5e6f records=3 ok=3 failed=0\n")


# --- every attribute type --------------------------------------------------------------------


def test_every_attribute_type_is_written_exactly() -> None:
    new_image = {
        "order_id": {"S": "ord-1"},  # the key: every row carries it
        "s": {"S": 'say "hi" \\ tab\t ünïcödé ✓'},
        "n_int": {"N": "42"},
        "n_negative": {"N": "-7"},
        "n_decimal": {"N": "19.99"},
        "n_huge": {"N": "12345678901234567890.123456789"},
        "n_38_digits": {"N": "12345678901234567890123456789012345678"},
        "n_trailing_zero": {"N": "1.50"},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "nothing": {"NULL": True},
        "m": {"M": {"inner": {"M": {"deep": {"N": "0.25"}}}, "tags": {"L": [{"S": "a"}, {"N": "2"}]}}},
        "l": {"L": [{"S": "x"}, {"L": [{"BOOL": True}, {"NULL": True}]}, {"M": {"k": {"S": "v"}}}]},
        "ss": {"SS": ["red", "blue"]},
        "ns": {"NS": ["1", "2.5", "-3.25"]},
        "bs": {"BS": ["AAEC", "/w=="]},
        "b": {"B": "aGVsbG8="},
        "empty_m": {"M": {}},
        "empty_l": {"L": []},
    }
    output = transform_record(firehose_record(stream_record("INSERT", NewImage=new_image)))

    assert row_text(output) == (
        r'{"order_id":"ord-1","s":"say \"hi\" \\ tab\t ünïcödé ✓","n_int":42,"n_negative":-7,"n_decimal":19.99,'
        r'"n_huge":12345678901234567890.123456789,"n_38_digits":12345678901234567890123456789012345678,'
        r'"n_trailing_zero":1.50,"yes":true,"no":false,"nothing":null,'
        r'"m":{"inner":{"deep":0.25},"tags":["a",2]},"l":["x",[true,null],{"k":"v"}],'
        r'"ss":["red","blue"],"ns":[1,2.5,-3.25],"bs":["AAEC","/w=="],"b":"aGVsbG8=","empty_m":{},"empty_l":[],'
        r'"event_type":"INSERT","event_id":"ev-1","sequence_number":"1130700000000041846562791",'
        r'"event_ts":"2026-01-05T09:58:11.000Z","arrival_ts":"2026-01-05T09:58:11.871Z","is_deleted":false}'
    )


def test_output_is_one_compact_utf8_json_object_without_trailing_newline() -> None:
    data = base64.b64decode(transform_record(firehose_record(fixture("insert_order.json")))["data"])

    assert not data.endswith(b"\n")
    assert "Zoë".encode() in data  # raw UTF-8, not \u00eb escapes
    assert data.decode("utf-8") == json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ({"N": "42"}, 42),
        ({"N": "-7"}, -7),
        ({"N": "0"}, 0),
        ({"N": "1E+2"}, 100),
        ({"N": "9.9999999999999999999999999999999999999E+125"}, 99999999999999999999999999999999999999 * 10**88),
        ({"N": "1E-130"}, Decimal("1E-130")),
        ({"N": "19.99"}, Decimal("19.99")),
        ({"N": "12345678901234567890.123456789"}, Decimal("12345678901234567890.123456789")),
        ({"S": ""}, ""),
        ({"NULL": True}, None),
        ({"NS": ["1", "0.5"]}, [1, Decimal("0.5")]),
        ({"M": {"a": {"L": [{"N": "1.0"}]}}}, {"a": [Decimal("1.0")]}),
    ],
)
def test_unmarshal_gives_plain_exact_values(attribute: dict[str, Any], expected: Any) -> None:
    value = unmarshal(attribute)

    assert value == expected
    assert type(value) is type(expected)


def test_numbers_never_pass_through_float() -> None:
    assert type(unmarshal({"N": "0.1"})) is Decimal
    assert encode_row({"a": unmarshal({"N": "0.1"}), "b": unmarshal({"N": "12345678901234567890.123456789"})}) == (
        '{"a":0.1,"b":12345678901234567890.123456789}'
    )
    # An exponent stays valid JSON with the same value.
    assert encode_row({"tiny": unmarshal({"N": "1E-7"})}) == '{"tiny":1E-7}'


@pytest.mark.parametrize("text", ["-0.00", "00.50", "19.99", "0.000000000000000000000000000001",
                                  "123456789012345678901234567890.5", "1234567890123456789012345678901.5", "-12.0"])
def test_a_plain_fraction_reads_as_the_general_path_reads_it(text: str) -> None:
    """The fast path for "19.99" must answer what Decimal's checks answer, text for text."""
    value = unmarshal({"N": text})
    assert type(value) is Decimal and str(value) == str(Decimal(text)) and value.as_tuple() == Decimal(text).as_tuple()


def test_timestamps_are_the_same_text_at_every_second_and_millisecond() -> None:
    for ms in (-62135596800000, -1, 0, 999, 1000, 86_399_999, 951_782_400_000, 253402300799999):
        assert format_timestamp(ms) == (datetime(1970, 1, 1) + timedelta(milliseconds=ms)).isoformat(
            timespec="milliseconds") + "Z"
    with pytest.raises(OverflowError):
        format_timestamp(253402300800000)


def test_encode_row_refuses_a_type_it_cannot_write_exactly() -> None:
    with pytest.raises(TypeError, match="cannot write a float"):
        encode_row({"price": 19.99})


# --- REMOVE variants and event times ---------------------------------------------------------


def test_remove_without_old_image_keeps_only_the_keys() -> None:
    output = transform_record(firehose_record(stream_record("REMOVE")))

    assert row_of(output) == {
        "order_id": "ord-1",
        "event_type": "REMOVE",
        "event_id": "ev-1",
        "sequence_number": "1130700000000041846562791",
        "event_ts": "2026-01-05T09:58:11.000Z",
        "arrival_ts": "2026-01-05T09:58:11.871Z",
        "is_deleted": True,
    }


@pytest.mark.parametrize(
    ("approximate_creation", "event_ts", "keys"),
    [
        (1767225599.9, "2025-12-31T23:59:59.900Z", ("2025", "12", "31")),
        (1767225599.9999, "2025-12-31T23:59:59.999Z", ("2025", "12", "31")),  # truncated, never rounded into tomorrow
        (1767225600, "2026-01-01T00:00:00.000Z", ("2026", "01", "01")),
        (1767225600.001, "2026-01-01T00:00:00.001Z", ("2026", "01", "01")),
        (1709164800.5, "2024-02-29T00:00:00.500Z", ("2024", "02", "29")),
    ],
)
def test_event_time_and_partition_keys_at_utc_day_boundaries(
    approximate_creation: float, event_ts: str, keys: tuple[str, str, str]
) -> None:
    record = stream_record("INSERT", ApproximateCreationDateTime=approximate_creation)

    output = transform_record(firehose_record(record))

    assert row_of(output)["event_ts"] == event_ts
    assert output["metadata"]["partitionKeys"] == dict(zip(("year", "month", "day"), keys, strict=True))


def test_build_row_accepts_a_record_parsed_with_plain_json_loads() -> None:
    parsed = json.loads(json.dumps(stream_record("INSERT", ApproximateCreationDateTime=1767225599.9)))

    assert build_row(parsed, 0)["event_ts"] == "2025-12-31T23:59:59.900Z"
    assert build_row(parsed, 0)["arrival_ts"] == "1970-01-01T00:00:00.000Z"


def test_format_timestamp_and_partition_keys_are_zero_padded() -> None:
    assert format_timestamp(1704070805007) == "2024-01-01T01:00:05.007Z"
    assert partition_keys("2024-01-01T01:00:05.007Z") == {"year": "2024", "month": "01", "day": "01"}


# --- failures --------------------------------------------------------------------------------


def with_new_image(attribute: Any) -> dict[str, Any]:
    return stream_record("INSERT", NewImage={"order_id": {"S": "ord-1"}, "price": attribute})


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "data: empty, expected a base64 DynamoDB stream record"),
        (b"\xff\xfe{}", "data: not UTF-8 (invalid start byte at byte 0)"),
        ("{not json", "data: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ('{"eventName": NaN}', "data: not JSON (NaN is not a JSON number)"),
        ("[1, 2]", "data: JSON list, expected an object (a DynamoDB stream record)"),
        ({"eventID": "ev-1"}, "eventName: missing, expected INSERT, MODIFY or REMOVE"),
        (stream_record("UPSERT"), "eventName: got 'UPSERT', expected INSERT, MODIFY or REMOVE"),
        ({"eventName": "INSERT", "eventID": "ev-1"}, "dynamodb: missing, expected an object (the StreamRecord)"),
        (
            stream_record("INSERT", SequenceNumber=None),
            "dynamodb.SequenceNumber: missing, expected a string of decimal digits",
        ),
        (
            stream_record("INSERT", SequenceNumber="12ab"),
            "dynamodb.SequenceNumber: got '12ab', expected a string of decimal digits",
        ),
        (
            stream_record("INSERT", ApproximateCreationDateTime=None),
            "dynamodb.ApproximateCreationDateTime: missing, expected epoch seconds (a number)",
        ),
        (
            '{"eventName": "INSERT", "eventID": "e", "dynamodb": '
            '{"SequenceNumber": "1", "ApproximateCreationDateTime": 1e999999, "NewImage": {}}}',
            "dynamodb.ApproximateCreationDateTime: 1E+999999 s is outside years 1-9999",
        ),
        (
            stream_record("INSERT", ApproximateCreationDateTime="2026-01-05T09:58:11Z"),
            "dynamodb.ApproximateCreationDateTime: got '2026-01-05T09:58:11Z', expected epoch seconds (a number)",
        ),
        (
            {k: v for k, v in stream_record("MODIFY").items() if k != "eventID"},
            "eventID: missing, expected a non-empty string",
        ),
        (
            stream_record("MODIFY", NewImage=None),
            "dynamodb.NewImage: expected a map of attributes, got None",
        ),
        (
            with_new_image({"X": "1"}),
            "dynamodb.NewImage.price: unknown type descriptor 'X'",
        ),
        (
            with_new_image({"S": "a", "N": "1"}),
            "dynamodb.NewImage.price: expected one {type: value} pair, got {'S': 'a', 'N': '1'}",
        ),
        (with_new_image("19.99"), "dynamodb.NewImage.price: expected one {type: value} pair, got '19.99'"),
        (with_new_image({"N": "abc"}), "dynamodb.NewImage.price: N value 'abc' is not a DynamoDB number"),
        (with_new_image({"N": "NaN"}), "dynamodb.NewImage.price: N value 'NaN' is not a DynamoDB number"),
        (with_new_image({"N": " 5"}), "dynamodb.NewImage.price: N value ' 5' is not a DynamoDB number"),
        (with_new_image({"N": "1E+126"}), "dynamodb.NewImage.price: N value '1E+126' is not a DynamoDB number"),
        (with_new_image({"N": "9" * 127}), f"dynamodb.NewImage.price: N value '{'9' * 56}... is not a DynamoDB number"),
        (
            with_new_image({"N": 19.99}),
            "dynamodb.NewImage.price: N value must be a string (the number's text), got 19.99",
        ),
        (with_new_image({"BOOL": "true"}), "dynamodb.NewImage.price: BOOL value must be true or false, got 'true'"),
        (with_new_image({"NULL": False}), "dynamodb.NewImage.price: NULL value must be true, got False"),
        (with_new_image({"B": "not base64!"}), "dynamodb.NewImage.price: B value 'not base64!' is not base64 text"),
        (with_new_image({"SS": ["a", 1]}), "dynamodb.NewImage.price[1]: S value must be a string, got 1"),
        (
            with_new_image({"M": {"lines": {"L": [{"S": "ok"}, {"M": {"qty": {"N": "Infinity"}}}]}}}),
            "dynamodb.NewImage.price.lines[1].qty: N value 'Infinity' is not a DynamoDB number",
        ),
        (with_new_image({"S": "\ud800"}), "data: a string holds '\\ud800', which is not valid UTF-8"),
    ],
)
def test_a_bad_record_fails_with_a_reason_naming_the_field(payload: Any, reason: str) -> None:
    record = firehose_record(payload)

    assert failure_reason(record) == reason
    assert transform_record(record) == {"recordId": "r-1", "result": "ProcessingFailed", "data": record["data"]}


def test_modify_without_new_image_fails() -> None:
    change = stream_record("MODIFY")
    del change["dynamodb"]["NewImage"]
    record = firehose_record(change)

    assert transform_record(record)["result"] == "ProcessingFailed"
    assert failure_reason(record) == (
        "dynamodb.NewImage: missing on a MODIFY record "
        "(the table's StreamViewType must be NEW_IMAGE or NEW_AND_OLD_IMAGES)"
    )


def test_bad_base64_fails_and_keeps_the_original_data() -> None:
    record = {"recordId": "r-1", "approximateArrivalTimestamp": ARRIVAL_MS, "data": "not base64!!"}

    assert transform_record(record) == {"recordId": "r-1", "result": "ProcessingFailed", "data": "not base64!!"}
    assert failure_reason(record) == "data: not valid base64 (Only base64 data is allowed)"


def test_missing_arrival_timestamp_fails_the_record() -> None:
    record = firehose_record(stream_record())
    del record["approximateArrivalTimestamp"]

    assert failure_reason(record) == "approximateArrivalTimestamp: missing, expected epoch milliseconds (an integer)"


def test_failure_reason_is_none_for_a_good_record() -> None:
    assert failure_reason(firehose_record(fixture("insert_order.json"))) is None


def test_decode_record_returns_the_stream_record_with_exact_times() -> None:
    record = decode_record(firehose_record(fixture("modify_order.json"))["data"])

    assert record["dynamodb"]["ApproximateCreationDateTime"] == Decimal("1767607512.345678")
    with pytest.raises(RecordError, match=r"^data: JSON str, expected an object"):
        decode_record(b64('"just a string"'))


# --- the handler -----------------------------------------------------------------------------


def test_mixed_batch_keeps_order_and_ids_and_fails_only_the_bad_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = [
        firehose_record(fixture("insert_order.json"), record_id="a"),
        {"recordId": "b", "approximateArrivalTimestamp": ARRIVAL_MS, "data": "%%%"},
        firehose_record(stream_record("REMOVE"), record_id="c"),
        firehose_record(stream_record("UPSERT"), record_id="d"),
        firehose_record(fixture("modify_order.json"), record_id="e"),
    ]

    response = handler({"invocationId": "inv-7", "records": records}, None)

    out = response["records"]
    assert [r["recordId"] for r in out] == ["a", "b", "c", "d", "e"]
    assert [r["result"] for r in out] == ["Ok", "ProcessingFailed", "Ok", "ProcessingFailed", "Ok"]
    assert out[1] == {"recordId": "b", "result": "ProcessingFailed", "data": "%%%"}
    assert out[3] == {"recordId": "d", "result": "ProcessingFailed", "data": records[3]["data"]}
    assert row_of(out[2])["is_deleted"] is True
    # One JSON line per failed record, carrying the invocation and what identifies the record in the
    # error output (its data's SHA-256): `make errors` finds every reason in the log group.
    *lines, summary = capsys.readouterr().out.splitlines()
    logged = [json.loads(line) for line in lines]
    assert [(d["invocationId"], d["recordId"], d["reason"]) for d in logged] == [
        ("inv-7", "b", "data: not valid base64 (Only base64 data is allowed)"),
        ("inv-7", "d", "eventName: got 'UPSERT', expected INSERT, MODIFY or REMOVE"),
    ]
    assert logged[1]["dataSha256"] == hashlib.sha256(base64.b64decode(records[3]["data"])).hexdigest()
    assert summary == "invocationId=inv-7 records=5 ok=3 failed=2"


def test_handler_never_returns_dropped() -> None:
    records = [firehose_record(payload, record_id=str(i)) for i, payload in enumerate(["{}", "[]", "x", {}])]

    results = {r["result"] for r in handler({"invocationId": "i", "records": records}, None)["records"]}

    assert results == {"ProcessingFailed"}


def test_handler_refuses_an_event_that_is_not_a_firehose_batch() -> None:
    with pytest.raises(ValueError, match="no 'records' list"):
        handler({"Records": []}, None)


def test_handler_loads_as_the_zip_top_level_module() -> None:
    """AWS imports `handler.handler` from the zip root: the file must work without its package."""
    spec = importlib.util.spec_from_file_location("handler", ROOT / "transform" / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    event = fixture("firehose_event.json")
    assert module.handler(event, None) == handler(event, None)


def test_transform_imports_only_the_standard_library() -> None:
    sources = sorted((ROOT / "transform").glob("*.py"))
    assert sources, "transform/ has no Python files"
    imported = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                # A relative import would break in the zip, where handler.py is a top-level module.
                assert node.level == 0, f"{path.name}: relative import of {node.module!r}"
                imported.add((node.module or "").split(".")[0])

    assert "json" in imported  # the walk does see the imports
    assert imported - sys.stdlib_module_names == set()


# --- the row contract (lake/schema.py ROW_SCHEMA, declared in the transform as plain data) ----


def test_the_transforms_row_contract_is_the_lake_schema_field_by_field() -> None:
    """The Lambda zip cannot import lake/schema.py: its own copy must never drift from it."""
    from lake.schema import EVENT_FIELDS, ITEM_FIELDS, ROW_SCHEMA
    from transform import handler as transform

    def declared(fields: Any) -> tuple[tuple[str, str], ...]:
        return tuple((f.name, str(f.type)) for f in fields)

    assert declared(ITEM_FIELDS) == transform.ITEM_CONTRACT
    assert declared(EVENT_FIELDS) == transform.EVENT_CONTRACT
    assert declared(ROW_SCHEMA) == transform.ROW_CONTRACT
    assert ROW_SCHEMA.names[0] == transform.KEY_FIELD == "order_id"


def insert_with(**attributes: Any) -> dict[str, Any]:
    """The INSERT fixture with some NewImage attributes replaced (None removes one)."""
    record = fixture("insert_order.json")
    image = record["dynamodb"]["NewImage"]
    for name, value in attributes.items():
        if value is None:
            del image[name]
        else:
            image[name] = value
    return record


DECIMAL_12_2 = "decimal128(12, 2) (at most 2 decimal places, at most 10 digits before the point)"
INT64 = "int64 (an integer from -9223372036854775808 to 9223372036854775807)"
TIMESTAMP_MS = "timestamp[ms] (ISO-8601 text, at most millisecond precision)"


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"order_id": None}, "dynamodb.NewImage.order_id: missing, expected a non-empty string (the table's key)"),
        ({"order_id": {"S": ""}}, "dynamodb.NewImage.order_id: got '', expected a non-empty string (the table's key)"),
        ({"order_id": {"N": "7"}}, "dynamodb.NewImage.order_id: got 7, expected a non-empty string (the table's key)"),
        ({"quantity": {"N": "2.5"}}, f"dynamodb.NewImage.quantity: got 2.5, expected {INT64}"),
        ({"quantity": {"S": "two"}}, f"dynamodb.NewImage.quantity: got 'two', expected {INT64}"),
        ({"quantity": {"N": str(2**63)}}, f"dynamodb.NewImage.quantity: got {2**63}, expected {INT64}"),
        ({"unit_price": {"N": "19.999"}}, f"dynamodb.NewImage.unit_price: got 19.999, expected {DECIMAL_12_2}"),
        (
            {"unit_price": {"N": "10000000000"}},
            f"dynamodb.NewImage.unit_price: got 10000000000, expected {DECIMAL_12_2}",
        ),
        ({"unit_price": {"S": "19.99"}}, f"dynamodb.NewImage.unit_price: got '19.99', expected {DECIMAL_12_2}"),
        (
            {"discount": {"N": "0.12345"}},
            "dynamodb.NewImage.discount: got 0.12345, expected decimal128(5, 4) "
            "(at most 4 decimal places, at most 1 digit before the point)",
        ),
        ({"order_ts": {"S": "yesterday"}}, f"dynamodb.NewImage.order_ts: got 'yesterday', expected {TIMESTAMP_MS}"),
        (
            {"updated_ts": {"S": "2026-01-05T09:58:11.123456Z"}},
            f"dynamodb.NewImage.updated_ts: got '2026-01-05T09:58:11.123456Z', expected {TIMESTAMP_MS}",
        ),
        ({"order_ts": {"N": "1767607091"}}, f"dynamodb.NewImage.order_ts: got 1767607091, expected {TIMESTAMP_MS}"),
        ({"customer_id": {"N": "421"}}, "dynamodb.NewImage.customer_id: got 421, expected string"),
        ({"status": {"BOOL": True}}, "dynamodb.NewImage.status: got True, expected string"),
        ({"category": {"SS": ["a"]}}, "dynamodb.NewImage.category: got ['a'], expected string"),
    ],
)
def test_a_value_the_lake_cannot_hold_exactly_fails_the_record_naming_field_value_and_type(
    attributes: dict[str, Any], reason: str
) -> None:
    record = firehose_record(insert_with(**attributes))

    assert failure_reason(record) == reason
    assert transform_record(record) == {"recordId": "r-1", "result": "ProcessingFailed", "data": record["data"]}


def test_values_the_lake_holds_exactly_pass_and_an_integral_number_is_written_as_an_integer() -> None:
    record = insert_with(
        quantity={"N": "2.0"}, unit_price={"N": "19.990"}, discount={"N": "0"}, order_total={"NULL": True},
        order_ts={"S": "2026-01-05T11:58:11.123+02:00"}, channel=None, coupon={"N": "0.12345"},
    )

    row = row_of(transform_record(firehose_record(record)))

    assert (row["quantity"], type(row["quantity"])) == (2, int)
    assert (row["unit_price"], row["discount"], row["order_total"]) == (Decimal("19.990"), 0, None)
    assert row["order_ts"] == "2026-01-05T11:58:11.123+02:00"
    assert "channel" not in row
    assert row["coupon"] == Decimal("0.12345")  # not a lake column: not the contract's business


def remove_with(**attributes: Any) -> dict[str, Any]:
    record = fixture("remove_order.json")
    record["dynamodb"]["OldImage"].update(attributes)
    return record


def test_a_remove_lands_even_when_its_old_image_has_values_the_lake_cannot_hold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A delete needs only its key and event fields: a bad old attribute becomes null, never a lost delete."""
    from lake.encoding import decode_rows, rows_to_table

    record = remove_with(
        quantity={"S": "two"}, unit_price={"N": "19.999"}, order_ts={"S": "garbage"},
        customer_name={"N": "not a number"}, product_id={"X": "unknown descriptor"},
    )

    output = handler({"invocationId": "inv-9", "records": [firehose_record(record)]}, None)["records"][0]

    row = row_of(output)
    assert (row["order_id"], row["event_type"], row["is_deleted"]) == ("ord-1b2d4e6f", "REMOVE", True)
    nulled = ("quantity", "unit_price", "order_ts", "customer_name", "product_id")
    assert {name: row[name] for name in nulled} == dict.fromkeys(nulled)
    assert row["order_total"] == Decimal("39.5")  # the good attributes stay
    # The row converts to Parquet as it is: the delete reaches the lake.
    (converted,) = rows_to_table(decode_rows([base64.b64decode(output["data"])])).to_pylist()
    assert (converted["order_id"], converted["is_deleted"], converted["quantity"]) == ("ord-1b2d4e6f", True, None)
    # And each null is explained in the log, one JSON line each.
    *notes, summary = capsys.readouterr().out.splitlines()
    assert summary == "invocationId=inv-9 records=1 ok=1 failed=0"
    explained = [json.loads(line) for line in notes]
    assert {(n["invocationId"], n["recordId"]) for n in explained} == {("inv-9", "r-1")}
    assert sorted(n["nulled"].split(":")[0] for n in explained) == sorted(f"dynamodb.OldImage.{n}" for n in nulled)


# --- attribute names: Firehose's conversion reads JSON keys case-insensitively --------------------
# OpenXJsonSerDe CaseInsensitive is true by default (bootstrap/spec.py keeps it): `Quantity` fills the
# lake column quantity. https://docs.aws.amazon.com/firehose/latest/APIReference/API_OpenXJsonSerDe.html


def test_a_mixed_case_attribute_is_checked_as_the_lake_column_it_fills() -> None:
    record = firehose_record(insert_with(unit_price=None, Unit_Price={"N": "19.999"}))

    assert failure_reason(record) == f"dynamodb.NewImage.Unit_Price: got 19.999, expected {DECIMAL_12_2}"


def test_a_mixed_case_attribute_that_fits_is_written_under_the_lake_column_s_name() -> None:
    row = row_of(transform_record(firehose_record(insert_with(quantity=None, Quantity={"N": "3"}))))

    assert (row["quantity"], "Quantity" in row) == (3, False)


def test_two_attributes_that_fill_one_lake_column_fail_the_record_instead_of_one_winning_silently() -> None:
    record = firehose_record(insert_with(status={"S": "PAID"}, STATUS={"S": "legacy"}))

    assert failure_reason(record) == (
        "dynamodb.NewImage: 'STATUS' and 'status' both fill the lake column status (Firehose's conversion reads "
        "keys case-insensitively); keep one of them")


def test_a_remove_lands_when_a_mixed_case_old_attribute_cannot_fill_its_lake_column() -> None:
    """The delete of an order whose old image has `Quantity: "many"` must still reach the lake."""
    from lake.encoding import decode_rows, rows_to_table

    record = remove_with(Quantity={"S": "many"}, STATUS={"S": "legacy"})

    output = handler({"invocationId": "inv-1", "records": [firehose_record(record)]}, None)["records"][0]

    assert output["result"] == "Ok"
    (converted,) = rows_to_table(decode_rows([base64.b64decode(output["data"])])).to_pylist()
    assert (converted["is_deleted"], converted["quantity"], converted["status"]) == (True, None, None)


def test_a_remove_whose_old_image_holds_its_key_twice_keeps_the_stream_s_key() -> None:
    """`ORDER_ID` beside `order_id` in the old image clash, but a REMOVE's key comes from the stream's Keys:
    the clash must not null it (a delete with no key would reach no order)."""
    record = remove_with(ORDER_ID={"S": "someone-else"})

    row = row_of(transform_record(firehose_record(record)))

    assert (row["order_id"], row["is_deleted"]) == ("ord-1b2d4e6f", True)


def test_a_remove_without_a_usable_key_fails() -> None:
    record = fixture("remove_order.json")
    del record["dynamodb"]["Keys"]
    del record["dynamodb"]["OldImage"]["order_id"]

    assert failure_reason(firehose_record(record)) == (
        "dynamodb.OldImage.order_id: missing, expected a non-empty string (the table's key)"
    )
    record["dynamodb"]["Keys"] = {"order_id": {"N": "12"}}
    assert failure_reason(firehose_record(record)) == (
        "dynamodb.Keys.order_id: got 12, expected a non-empty string (the table's key)"
    )
    del record["dynamodb"]["Keys"]
    record["dynamodb"]["OldImage"] = None
    assert failure_reason(firehose_record(record)) == "dynamodb.OldImage: expected a map of attributes, got None"


def test_every_fixture_row_converts_to_the_lake_schema_exactly() -> None:
    from lake.encoding import decode_rows, rows_to_table

    response = handler(fixture("firehose_event.json"), None)
    lines = [base64.b64decode(r["data"]) for r in response["records"]]
    table = rows_to_table(decode_rows(lines))
    assert table.column("order_id").to_pylist() == ["ord-1b2d4e6f", "ord-7f3c9a2e", "ord-7f3c9a2e"]


CANDIDATES = [
    {"N": "2"}, {"N": "2.0"}, {"N": "2.5"}, {"N": "-7"}, {"N": "19.99"}, {"N": "19.990"}, {"N": "19.999"},
    {"N": "0.0001"}, {"N": "9.9999"}, {"N": "10"}, {"N": "9999999999.99"}, {"N": "10000000000"},
    {"N": "99999999999999.99"}, {"N": "-9223372036854775808"}, {"N": "9223372036854775808"}, {"N": "1E-130"},
    {"N": "0E-200"}, {"N": "1E+20"}, {"S": "x"}, {"S": "19.99"}, {"S": "2026-01-05T09:58:11.123Z"},
    {"S": "2026-01-05T09:58:11.123456Z"}, {"S": "2026-01-05"}, {"S": "2026-01-05T11:58:11+02:00"},
    {"BOOL": True}, {"NULL": True}, {"L": []},
]


@pytest.mark.parametrize("column", ["customer_id", "quantity", "unit_price", "discount", "order_total", "order_ts"])
def test_whatever_the_transform_passes_the_writer_converts_without_changing_it(column: str) -> None:
    """The transform's contract is sound against lake/encoding.py: an Ok row never meets a rounding or a refusal."""
    from lake.encoding import decode_rows, rows_to_table

    for attribute in CANDIDATES:
        output = transform_record(firehose_record(insert_with(**{column: attribute})))
        if output["result"] != "Ok":
            continue
        (line,) = decode_rows([base64.b64decode(output["data"])])
        (converted,) = rows_to_table([line]).to_pylist()
        if column in ("quantity", "unit_price", "discount", "order_total") and line[column] is not None:
            assert Decimal(converted[column]) == Decimal(line[column]), (column, attribute)
        else:
            assert (converted[column] is None) == (line[column] is None), (column, attribute)
