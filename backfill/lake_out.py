"""Writes a page of snapshot rows into the lake exactly as the firehose runner writes stream rows.

Same encoder (lake/encoding.py), same columns (the Glue table's, read by lake/glue_schema.py TableSchema,
the contract's until the table exists), same format (OUTPUT_FORMAT: Parquet, or gzip JSON lines of the
transform's own encoding). Only the object name differs: deterministic per page (backfill/core.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from backfill.core import failed_key, object_key, tombstone_key
from common.aws import Clients
from common.config import Settings
from common.errors import TerminalError
from lake.encoding import encode_fitting, encode_jsonl_gzip
from lake.glue_schema import TableSchema
from transform.handler import encode_row


class LakeOut:
    """Puts snapshot objects into the lake bucket; shared by the workers of one run."""

    def __init__(self, clients: Clients, settings: Settings) -> None:
        self.s3 = clients.s3
        self.settings = settings
        self.bucket = settings.lake_bucket_for(clients.account_id)
        self.parquet = settings.output_format == "parquet"
        self.extension = ".parquet" if self.parquet else ".gz"
        self._schema = TableSchema(clients.glue, settings.glue_database, settings.glue_table) if self.parquet else None
        self._lock = threading.Lock()

    def write_page(self, at: datetime, segment: int, page: int, rows: Sequence[Mapping[str, Any]],
                   failed: Sequence[tuple[Mapping[str, Any], str]]) -> int:
        """The page's object (none for a page without rows), and its refused items under the error prefix.

        Returns how many rows were set aside because the Glue table's columns cannot hold them (a column a
        user added, a value of another type): each goes to the same error object as `{"reason", "row"}`,
        its values exact, and the rest of the page lands, as the firehose runner sets such a row aside
        (format-conversion-failed) instead of failing its object.
        """
        body, unfit = self._body(rows) if rows else (None, [])
        if body is not None:
            self._put(object_key(self.settings.lake_prefix, at, segment, page, self.extension), body)
        lines = [json.dumps({"reason": reason, "item": item}, separators=(",", ":")) for item, reason in failed]
        lines += [f'{{"reason":{json.dumps(reason)},"row":{encode_row(row)}}}' for row, reason in unfit]
        if lines:
            self._put(failed_key(self.settings.error_prefix, at, segment, page), "\n".join(lines).encode() + b"\n")
        return len(unfit)

    def write_tombstones(self, at: datetime, page: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """One page of the snapshot's tombstones (backfill/tombstones.py), under its deterministic name."""
        body, unfit = self._body(rows)
        if unfit or body is None:  # a tombstone is a key and event fields: every table holds one
            raise TerminalError(f"a tombstone does not fit the Glue table: {unfit[0][1] if unfit else 'no rows'}")
        self._put(tombstone_key(self.settings.lake_prefix, at, page, self.extension), body)

    def _body(self, rows: Sequence[Mapping[str, Any]]) -> tuple[bytes | None, list[tuple[Mapping[str, Any], str]]]:
        """The object's bytes (None: no row fits), and each row the table's columns cannot hold, with why."""
        if self._schema is None:
            return encode_jsonl_gzip([encode_row(row).encode("utf-8") + b"\n" for row in rows]), []
        with self._lock:  # TableSchema caches what it read from Glue: one worker asks at a time
            schema = self._schema.for_rows(rows)
        body, unfit = encode_fitting(rows, schema)
        return body, [(rows[index], reason) for index, reason in unfit]

    def _put(self, key: str, body: bytes) -> None:
        """botocore retries it (standard mode, common/aws.py): one policy, never a loop of our own around it."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

