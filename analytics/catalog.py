"""What the Glue catalog says about the lake, as one frozen value the engines build their views from.

Analytics never hard-codes where the lake is or how it is stored: the table's location, format
(SerDe / classification), partition keys and columns come from Glue's GetTable, exactly what
Athena reads. Glue column types are Hive type strings; `arrow_type` (lake/glue_schema.py, the one
module that owns the Glue table and its type mapping) maps them to Arrow so a pyarrow dataset reads
the objects with the catalog's schema (a column the catalog knows but an older object lacks then
reads as NULL, as in Athena).

References: GetTable https://docs.aws.amazon.com/glue/latest/webapi/API_GetTable.html,
Athena data types https://docs.aws.amazon.com/athena/latest/ug/data-types.html.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from common.aws import Clients, error_code
from common.config import Settings
from common.errors import TerminalError
from lake.glue_schema import DATA_FORMATS, contract_columns
from lake.glue_schema import arrow_schema as glue_arrow_schema
from lake.glue_schema import arrow_type as arrow_type  # re-exported: the engine maps catalog types with it
from lake.schema import PARTITION_KEYS


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Glue/Hive type string, e.g. "decimal(12,2)"


@dataclass(frozen=True)
class TableInfo:
    """One Glue table: where its objects are, how they are stored, which columns they carry."""

    database: str
    name: str
    location: str  # s3://bucket/prefix/ (or a local directory for the local engine)
    data_format: str  # "parquet" | "json"
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    compressed: bool = False

    @property
    def bucket(self) -> str:
        return urlparse(self.location).netloc

    @property
    def prefix(self) -> str:
        """The key prefix under the bucket, with a trailing slash ('' for the bucket root)."""
        path = urlparse(self.location).path.lstrip("/")
        return path if not path or path.endswith("/") else path + "/"

    @property
    def qualified_name(self) -> str:
        """The table as SQL names it, quoted: "database"."table"."""
        return f'{quote_identifier(self.database)}.{quote_identifier(self.name)}'

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def data_format_of(table: dict[str, Any]) -> str:
    """Athena's rule: the `classification` parameter, else what the SerDe / InputFormat names."""
    classification = str((table.get("Parameters") or {}).get("classification", "")).lower()
    if classification in DATA_FORMATS:
        return classification
    storage = table.get("StorageDescriptor") or {}
    serde = (storage.get("SerdeInfo") or {}).get("SerializationLibrary", "")
    names = f"{storage.get('InputFormat', '')} {serde}".lower()
    for fmt in DATA_FORMATS:
        if fmt in names:
            return fmt
    raise TerminalError(
        f"Glue table {table.get('DatabaseName')}.{table.get('Name')} is neither Parquet nor JSON "
        f"(classification={classification or 'unset'}); re-run the crawler over the lake"
    )


def table_info_from_glue(table: dict[str, Any]) -> TableInfo:
    """Pure: a GetTable `Table` structure to a TableInfo."""
    storage = table.get("StorageDescriptor") or {}
    location = storage.get("Location") or ""
    if not location:
        raise TerminalError(f"Glue table {table.get('Name')} has no StorageDescriptor.Location; re-crawl")
    params = table.get("Parameters") or {}
    compressed = bool(storage.get("Compressed")) or params.get("compressionType", "none") not in ("", "none")
    return TableInfo(
        database=str(table.get("DatabaseName", "")),
        name=str(table["Name"]),
        location=location if location.endswith("/") else location + "/",
        data_format=data_format_of(table),
        columns=tuple(Column(c["Name"].lower(), c["Type"].lower()) for c in storage.get("Columns") or []),
        partition_keys=tuple(
            Column(c["Name"].lower(), c.get("Type", "string").lower()) for c in table.get("PartitionKeys") or []
        ),
        compressed=compressed,
    )


def load_table(clients: Clients, settings: Settings) -> TableInfo:
    """GetTable for settings.glue_database / glue_table; one clear line when the crawler never ran."""
    try:
        response = clients.glue.get_table(DatabaseName=settings.glue_database, Name=settings.glue_table)
    except Exception as exc:
        if error_code(exc) == "EntityNotFoundException":
            raise TerminalError(
                f"Glue table {settings.glue_database}.{settings.glue_table} does not exist; "
                "run the crawler first (make crawl, or `pipeline crawl`)"
            ) from None
        raise
    return table_info_from_glue(response["Table"])


def arrow_schema(table: TableInfo) -> pa.Schema:
    """The data columns (no partition keys) as Arrow reads them from the objects (lake/glue_schema.py types)."""
    return glue_arrow_schema(tuple((c.name, c.type) for c in table.columns))


CONTRACT_COLUMNS: tuple[Column, ...] = tuple(Column(name, kind) for name, kind in contract_columns("parquet"))


def local_table_info(location: str, data_format: str = "parquet", database: str = "local",
                     name: str = "sales_orders_cdc") -> TableInfo:
    """A TableInfo for a lake on local disk laid out like S3 (unit tests, benchmark reference).

    Columns are the lake contract (lake/schema.py) typed as lake/glue_schema.py declares the
    table: for JSON lines, timestamps are strings and money is double, as Glue's JSON classifier
    would have it.
    """
    if data_format not in DATA_FORMATS:
        raise TerminalError(f"data_format={data_format!r} is unknown; use one of {', '.join(DATA_FORMATS)}")
    columns = tuple(Column(name, kind) for name, kind in contract_columns(data_format))
    return TableInfo(
        database=database,
        name=name,
        location=location if location.endswith("/") else location + "/",
        data_format=data_format,
        columns=columns,
        partition_keys=tuple(Column(k, "string") for k in PARTITION_KEYS),
        compressed=data_format == "json",
    )

