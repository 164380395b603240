"""lake/encoding.py table_from_lines reads JSON lines in C++ only where it gives exactly the table the row-by-row
path (rows_to_table(decode_rows(lines))) gives; everywhere else it answers None, and the caller takes that path,
which accepts what it may or names the problem. Each test below holds the two paths equal, value by value."""

from __future__ import annotations

import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from lake.encoding import decode_rows, encode_parquet, parquet_bytes, rows_to_table, table_from_lines
from lake.schema import ROW_SCHEMA
from tests.unit.lake.test_encoding import ROW
from transform.handler import encode_row

SCHEMA = pa.schema([("s", pa.string()), ("n", pa.int64()), ("d", pa.decimal128(12, 2)),
                    ("e", pa.decimal128(5, 4)), ("t", pa.timestamp("ms")), ("b", pa.bool_())])


def row_by_row(lines: list[bytes], schema: pa.Schema) -> pa.Table | None:
    """The reference: what the firehose runner built before (None: it refused at least one line)."""
    try:
        return rows_to_table(decode_rows(lines), schema)
    except (ValueError, TypeError, AttributeError):  # not JSON, not an object, or a value that does not fit
        return None


def assert_agrees(lines: list[bytes], schema: pa.Schema = SCHEMA) -> pa.Table | None:
    fast = table_from_lines(lines, schema)
    if fast is not None:
        reference = row_by_row(lines, schema)
        assert reference is not None, f"read at once, refused row by row: {lines!r}"
        assert fast.schema == reference.schema
        assert fast.to_pylist() == reference.to_pylist(), lines
        assert fast.equals(reference)
    return fast


# Values each path must treat the same way: accepted alike, or refused by the fast one.
EDGES = [
    b'{"s":"a","n":1,"d":1.5,"e":0.1,"t":"2026-01-05T12:00:00.123Z","b":true}',
    b'{}', b'{"s":null,"n":null,"d":null,"t":null,"b":null}', b'{"s" : "a" , "n" : 1 }', b'\t{"s":"a"}\r',
    b'{"s":"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00 \\/ \\u0000"}', b'{"s":"t\x7fx"}', b'\xef\xbb\xbf{"s":"a"}',
    # a string column takes any value on the row-by-row path (as JSON text): only strings at once
    b'{"s":5}', b'{"s":NaN}', b'{"s":{"a":1}}', b'{"s":[1]}', b'{"s":true}',
    # text that is not UTF-8, or a lone surrogate: refused row by row, so never read at once
    b'{"s":"\xff"}', b'{"s":"\xed\xa0\x80"}', b'{"s":"\xc0\xaf"}', b'{"s":"\\ud800"}', b'{"s":"\\uDE00"}',
    # keys: only the columns' names, exactly, once each
    b'{"S":"x"}', b'{"s":"a","S":"b"}', b'{"s":"a","s":"b"}', b'{"n":1,"n":null}', b'{"":1}', b'{"x":1}',
    # integers
    b'{"n":-0}', b'{"n":2.0}', b'{"n":1e2}', b'{"n":"5"}', b'{"n":true}', b'{"n":1.5}', b'{"n":NaN}',
    b'{"n":9223372036854775807}', b'{"n":-9223372036854775808}', b'{"n":9223372036854775808}', b'{"n":[1]}',
    # decimals: exact or refused, never rounded; digits past the precision caught by the full validation
    b'{"d":19.990}', b'{"d":1e2}', b'{"d":-0.00}', b'{"d":0.1e1}', b'{"d":-1.5E-1}', b'{"d":1234567890.12}',
    b'{"d":"19.99"}', b'{"d":" 19.99"}', b'{"d":"+19.99"}', b'{"d":"1_000"}', b'{"d":"\xd9\xa1\xd9\xa2"}',
    b'{"d":"NaN"}', b'{"d":NaN}', b'{"d":Infinity}', b'{"d":""}', b'{"d":"1."}', b'{"d":".5"}', b'{"d":true}',
    b'{"d":1e-400}', b'{"d":1e400}', b'{"d":12345678901.00}', b'{"d":99999999999.99}', b'{"d":1.999}',
    b'{"e":"+19.99"}', b'{"e":12}', b'{"e":1E+2}', b'{"e":"1.5e1"}', b'{"e":0.00000}', b'{"e":-0.0}',
    # timestamps: the transform's text at once, any other form row by row
    b'{"t":"2026-01-05T12:00:00Z"}', b'{"t":"2026-01-05T12:00:00.1Z"}', b'{"t":"2026-01-05T12:00:00.123456Z"}',
    b'{"t":"2026-01-05 12:00:00"}', b'{"t":"2026-01-05T12:00:00+02:00"}', b'{"t":"2026-01-05"}',
    b'{"t":"2026-01-05T12:00:00"}', b'{"t":1700000000}', b'{"t":"2026-01-05T24:00:00Z"}', b'{"t":"x"}',
    b'{"t":"2026-02-30T12:00:00Z"}', b'{"t":"0001-01-01T00:00:00.000Z"}',
    # booleans
    b'{"b":false}', b'{"b":1}', b'{"b":"true"}', b'{"b":TRUE}',
    # not one JSON object
    b'', b' ', b'\x0c', b'[1]', b'5', b'"a"', b'null', b'{"s":"a"} {"s":"b"}', b'{"s":"a"}\n{"s":"b"}',
    b'{"s":"a"}}', b'{"s":"a"', b'{"s":"a",}', b"{'s':'a'}", b'{"s":"t\tx"}', b'{"s":"\\x41"}', b'\x00{}',
    b'{"s":"a"}\x00', b'{"s":\n"a"}', b'{"n":+1}', b'{"n":01}', b'{"d":1.}', b'{"d":.5}',
    '{"s":"a"}'.encode("utf-16"),
]


@pytest.mark.parametrize("line", EDGES)
def test_one_line_is_read_at_once_only_as_it_is_row_by_row(line: bytes) -> None:
    assert_agrees([line])
    assert_agrees([EDGES[0], line, EDGES[0]])  # and among good lines


def test_what_is_read_at_once() -> None:
    """Not a tautology: the fast path must actually take the ordinary rows, or it saves nothing."""
    taken = [line for line in EDGES if assert_agrees([line]) is not None]
    assert EDGES[0] in taken and b'{"d":19.990}' in taken and b'{"t":"2026-01-05T12:00:00.1Z"}' in taken
    for refused in (b'{"s":"\xff"}', b'{"e":"+19.99"}', b'{"S":"x"}', b'{"s":"a","s":"b"}', b'{"s":5}',
                    b'{"t":"2026-01-05T12:00:00+02:00"}', b'{"n":2.0}'):
        assert table_from_lines([refused], SCHEMA) is None


def test_a_blank_line_and_a_line_of_two_objects_cannot_cancel_out() -> None:
    """The reader skips a blank line and reads two objects from one line: the count alone would match."""
    assert table_from_lines([b'{"s":"a"} {"s":"b"}', b"  \n"], SCHEMA) is None
    assert row_by_row([b'{"s":"a"} {"s":"b"}', b"  \n"], SCHEMA) is None


def test_lines_with_or_without_their_delimiter_read_the_same() -> None:
    lines = [b'{"s":"a","n":1}', b'{"s":"b","n":2}']
    with_newlines = [line + b"\n" for line in lines]
    assert table_from_lines(lines, SCHEMA).equals(table_from_lines(with_newlines, SCHEMA))
    assert table_from_lines(with_newlines, SCHEMA).num_rows == 2


@pytest.mark.parametrize("kind", [pa.float64(), pa.float32(), pa.int32(), pa.timestamp("us"),
                                  pa.timestamp("ms", tz="UTC"), pa.struct([("a", pa.string())]),
                                  pa.list_(pa.string()), pa.date32()])
def test_a_column_type_the_reader_might_convert_otherwise_goes_row_by_row(kind: pa.DataType) -> None:
    assert table_from_lines([b'{"s":"a"}'], pa.schema([("s", pa.string()), ("x", kind)])) is None


def test_a_column_name_with_capitals_goes_row_by_row() -> None:
    """Row by row, keys are lowercased before they meet the columns: 'X' would never fill column 'X'."""
    assert table_from_lines([b'{"X":"a"}'], pa.schema([("X", pa.string())])) is None


def test_the_transforms_rows_are_read_at_once_into_the_same_parquet() -> None:
    rows = [{**ROW, "order_id": f"ord-{i}", "quantity": i, "unit_price": Decimal(f"{i}.{i % 100:02d}"),
             "order_ts": f"2026-01-05T09:58:{i % 60:02d}.{i % 1000:03d}Z", "customer_name": f"Zoë {i}"}
            for i in range(300)]
    lines = [encode_row(row).encode() + b"\n" for row in rows]  # as the Lambda writes them
    assert decode_rows(lines[:1])[0]["unit_price"] == Decimal("0.00")  # numbers, not strings
    table = assert_agrees(lines, ROW_SCHEMA)
    assert table is not None
    assert parquet_bytes(table) == encode_parquet(decode_rows(lines), ROW_SCHEMA)


FITTING = {  # values each column holds, in the forms a producer may write them
    "s": ['"a"', '"Zoë"', '""', '"\\u00e9\\n"', '"\\ud83d\\ude00"', "null"],
    "n": ["0", "-0", "1", "-7", "9223372036854775807", "null"],
    "d": ["0", "1", "19.99", "19.990", "-0.5", "1e2", "1.5E-1", '"19.99"', '"1e1"', "null"],
    "e": ["0", "0.1234", "0.12340", "-0.5", "1E-4", "null"],
    "t": ['"2026-01-05T12:00:00.123Z"', '"2026-01-05T12:00:00Z"', '"1970-01-01T00:00:00.5Z"', "null"],
    "b": ["true", "false", "null"],
}
ANY = ['"a"', "true", "2.0", "1.5", "19.999", "0.12345", "99999999999.99", "9223372036854775808", '" 1"',
       '"+1.5"', '"2026-01-05T12:00:00.1234Z"', '"2026-01-05 12:00:00"', '"\\ud800"', "[1]", '{"a":1}', "NaN",
       '"\xff"', "1e400"]


def _random_value(rng: random.Random, key: str) -> str:
    fitting = FITTING.get(key)
    return rng.choice(fitting) if fitting and rng.random() < 0.9 else rng.choice(ANY)


def test_random_lines_agree() -> None:
    """Seeded: lines of random keys (a column's name, another case, unknown, repeated) and random values."""
    rng = random.Random(20261202)
    names = [*SCHEMA.names, *SCHEMA.names, "S", "x"]  # a column's name most often
    taken = refused = 0
    for _ in range(1500):
        lines = []
        for _ in range(rng.randint(1, 4)):
            keys = rng.sample(names, rng.randint(0, 5)) + (rng.sample(names, 1) if rng.random() < 0.05 else [])
            line = "{" + ",".join(f'"{k}":{_random_value(rng, k)}' for k in keys) + "}"
            lines.append(line.encode("utf-8", "surrogateescape") + (b"\n" if rng.random() < 0.5 else b""))
        if assert_agrees(lines) is None:
            refused += 1
        else:
            taken += 1
    assert taken > 200 and refused > 200  # both paths exercised (329 and 1,171 with this seed)


# pyarrow's decimal parsing reads past a table for a scale beyond 38: "1e-41" becomes 0.00 (its memory decides)
# and "1e-10000000" crashes the process; it also takes "1e+-1" for 0.1. Each must take the row-by-row path,
# which refuses them by name. Run in a child process: a crash must fail this test, not end the run.
BEYOND_SCALE = [b'{"d":1e-41}', b'{"d":"1e-41"}', b'{"d":"1e+-1"}', b'{"d":"1E+-2"}', b'{"e":-5e-40}',
                b'{"d":"1e-10000000"}', b'{"d":"0.5e-99999999"}', b'{"d":1e-2147483647}', b'{"d":"1\\u0065-41"}',
                b'{"d": 1e-41}', b'{"d":[1e-41]}']
CHILD = """
import sys
from tests.unit.lake.test_lines_at_once import SCHEMA, row_by_row
from lake.encoding import table_from_lines
line = bytes.fromhex(sys.argv[1])
print("fast", table_from_lines([line], SCHEMA) is not None, flush=True)
print("row by row", row_by_row([line], SCHEMA) is not None, flush=True)
"""


@pytest.mark.parametrize("line", BEYOND_SCALE)
def test_a_decimal_beyond_38_places_or_with_a_doubled_sign_goes_row_by_row_and_is_refused(line: bytes) -> None:
    child = subprocess.run([sys.executable, "-c", CHILD, line.hex()], capture_output=True, text=True, timeout=60,
                           cwd=Path(__file__).resolve().parents[3])
    assert child.returncode == 0, f"{line!r} crashed the process ({child.returncode}): {child.stderr[-300:]}"
    assert child.stdout.splitlines() == ["fast False", "row by row False"], child.stdout
