"""lake/writer.py converts rows to the lake schema exactly, or refuses them naming the column (never rounds)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from lake.writer import ConversionError, check_row, rows_to_table

ROW: dict[str, Any] = {
    "order_id": "ord-1", "customer_id": "c1", "customer_name": "Ann", "customer_region": "EMEA",
    "product_id": "p1", "product_name": "Book", "category": "Books", "quantity": 2,
    "unit_price": Decimal("9.99"), "discount": Decimal("0.1"), "order_total": Decimal("17.98"),
    "currency": "EUR", "status": "PLACED", "payment_method": "card", "channel": "web",
    "order_ts": "2026-01-05T09:58:11.123Z", "updated_ts": "2026-01-05T09:58:11.123Z",
    "event_type": "INSERT", "event_id": "ev-1", "sequence_number": "1", "event_ts": "2026-01-05T09:58:11.000Z",
    "arrival_ts": "2026-01-05T09:58:11.871Z", "is_deleted": False,
}


def converted(**changes: Any) -> dict[str, Any]:
    return rows_to_table([{**ROW, **changes}]).to_pylist()[0]


def test_a_row_that_fits_converts_with_every_value_exact() -> None:
    row = converted()
    assert (row["quantity"], row["unit_price"], row["discount"]) == (2, Decimal("9.99"), Decimal("0.1000"))
    assert row["order_ts"] == datetime(2026, 1, 5, 9, 58, 11, 123000)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("unit_price", 19.9, Decimal("19.90")),  # padding to the scale loses nothing
        ("unit_price", Decimal("19.990"), Decimal("19.99")),  # the same number
        ("unit_price", 20, Decimal("20.00")),
        ("quantity", Decimal("2.0"), 2),  # an integral number is an integer
        ("quantity", Decimal("3E+1"), 30),
        ("quantity", None, None),
        ("order_ts", "2026-01-05T11:58:11.123+02:00", datetime(2026, 1, 5, 9, 58, 11, 123000)),  # to UTC, exactly
    ],
)
def test_exact_conversions_are_accepted(column: str, value: Any, expected: Any) -> None:
    assert converted(**{column: value})[column] == expected


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("quantity", Decimal("2.5"), "quantity: 2.5 is not an integer"),
        ("quantity", 2.5, "quantity: 2.5 is not an integer"),
        ("unit_price", Decimal("19.999"), "unit_price: 19.999 has more than 2 decimal places"),
        ("discount", Decimal("0.12345"), "discount: 0.12345 has more than 4 decimal places"),
        ("order_total", Decimal("1234567890123.00"), "order_total: 1234567890123.00 does not fit decimal128(14, 2)"),
        ("order_ts", "2026-01-05T09:58:11.123456Z", "order_ts: '2026-01-05T09:58:11.123456Z' is more precise than"),
        ("quantity", "two", "quantity: "),
        ("customer_id", 7, "customer_id: "),
    ],
)
def test_a_value_that_would_be_rounded_or_truncated_is_refused_naming_the_column(
    column: str, value: Any, message: str
) -> None:
    with pytest.raises(ConversionError) as error:
        check_row({**ROW, column: value})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
