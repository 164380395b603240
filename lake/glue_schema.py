"""The lake's Glue table, in one place: Glue<->Arrow types, TableInput, StorageDescriptor, PartitionInput,
and the table's current schema as Firehose's record-format conversion reads it.

Everything that writes or reads the table goes through this module, so no two of them can drift:
- the bootstrap declares the table on `aws` (CreateTable, `table_input` with the row contract's
  columns): Firehose's Parquet conversion reads its schema before the first object exists;
- the local crawler creates or updates it from the objects with the same `table_input` /
  `partition_input`, so for a lake of the pipeline's own rows it writes the very table the `aws`
  plan declares. Two sets of parameters differ, and only those: the crawler's bookkeeping
  (CRAWLER_PARAMETERS, as AWS's crawler sets them) and the project's tags, which the bootstrap
  keeps in the parameters of the table it owns (Glue tables take no tags; `bootstrap.spec.tags`);
- the firehose runner converts each buffer with `TableSchema`: the table's columns as of now, as
  Firehose does with SchemaConfiguration VersionId LATEST ("any updates to the table are
  automatically picked up"); attributes the table does not declare are dropped, a column added to
  the table appears in the next objects;
- analytics reads the objects with `arrow_schema` of the catalog's columns.

Types. Glue column types are Hive type strings. `glue_type` maps an Arrow type to one (what the
crawler reads from a Parquet footer), `arrow_type` maps one back (what the converter writes and
analytics reads). timestamp is Arrow timestamp[ms]: the transform writes milliseconds, and the
writer refuses a value the column would truncate. A nested DynamoDB attribute (M, L, SS, NS) is
converted as the column declares it, as Firehose's OpenX JSON SerDe does: `struct<...>` (the AWS
page's advice for nested JSON), `map<string,...>`, `array<...>`, or `string`, which holds the
value's JSON text (the SerDe's string inspector returns the parsed value's toString(); AWS
documents no other rule; key order and number spelling of that text may differ on AWS).

- Record format conversion: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html
  ("the converted data will not contain attributes that are not specified in the schema. If you
  use nested JSON, use a STRUCT type in the schema that mirrors the structure of your JSON data")
- SchemaConfiguration.VersionId: https://docs.aws.amazon.com/firehose/latest/APIReference/API_SchemaConfiguration.html
  (AWS documents no interval at which Firehose re-reads the table: SCHEMA_REFRESH_S is ours)
- OpenXJsonSerDe (CaseInsensitive, default true: JSON keys are lowercased before matching columns):
  https://docs.aws.amazon.com/firehose/latest/APIReference/API_OpenXJsonSerDe.html
  and the SerDe's string inspector: https://github.com/rcongiu/Hive-JSON-Serde
  (org.openx.data.jsonserde.objectinspector.primitive.JavaStringJsonObjectInspector)
- Parameters set on tables by crawlers: https://docs.aws.amazon.com/glue/latest/dg/table-properties-crawler.html
- TableInput / StorageDescriptor / PartitionInput:
  https://docs.aws.amazon.com/glue/latest/webapi/API_TableInput.html,
  https://docs.aws.amazon.com/glue/latest/webapi/API_StorageDescriptor.html,
  https://docs.aws.amazon.com/glue/latest/webapi/API_PartitionInput.html
- Athena data types: https://docs.aws.amazon.com/athena/latest/ug/data-types.html
- Partition projection: https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from common.errors import TerminalError
from lake.schema import PARTITION_KEYS, ROW_SCHEMA

Columns = tuple[tuple[str, str], ...]  # (name, Glue type), in table order

DATA_FORMATS = ("parquet", "json")  # a Glue table's data format (its classification), what Athena reads
STORAGE: dict[str, dict[str, str]] = {
    "parquet": {
        "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
    },
    "json": {
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
    },
}
# What a crawler adds to the table it writes, beyond the table's definition (table-properties-crawler.html):
# its name, and the object count and total size it found.
CRAWLER_PARAMETERS = ("UPDATED_BY_CRAWLER", "objectCount", "sizeKey")
# Years Athena projects when partition projection is on: a bounded range keeps unfiltered
# queries from listing decades of empty prefixes.
PROJECTION_YEARS = (2024, 2035)
SCHEMA_REFRESH_S = 60.0  # how often the converter re-reads the table (AWS documents no interval)


# --- Glue (Hive) types <-> Arrow types ---------------------------------------------------------


def glue_type(arrow: pa.DataType) -> str:
    """Pure: the Glue/Hive type of an Arrow type, as Athena's Parquet reader (and Firehose's converter) expects."""
    t = pa.types
    if t.is_string(arrow) or t.is_large_string(arrow) or t.is_null(arrow):
        return "string"
    if t.is_boolean(arrow):
        return "boolean"
    if t.is_int8(arrow):
        return "tinyint"
    if t.is_int16(arrow) or t.is_uint8(arrow):
        return "smallint"
    if t.is_int32(arrow) or t.is_uint16(arrow):
        return "int"
    if t.is_int64(arrow) or t.is_uint32(arrow):
        return "bigint"
    if t.is_uint64(arrow):
        return "decimal(20,0)"
    if t.is_float16(arrow) or t.is_float32(arrow):
        return "float"
    if t.is_float64(arrow):
        return "double"
    if t.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    if t.is_timestamp(arrow):
        return "timestamp"
    if t.is_date(arrow):
        return "date"
    if t.is_binary(arrow) or t.is_large_binary(arrow) or t.is_fixed_size_binary(arrow):
        return "binary"
    if t.is_list(arrow) or t.is_large_list(arrow):
        return f"array<{glue_type(arrow.value_type)}>"
    if t.is_map(arrow):
        return f"map<{glue_type(arrow.key_type)},{glue_type(arrow.item_type)}>"
    if t.is_struct(arrow):
        return "struct<" + ",".join(f"{f.name.lower()}:{glue_type(f.type)}" for f in arrow) + ">"
    if t.is_dictionary(arrow):
        return glue_type(arrow.value_type)
    raise TerminalError(f"Parquet type {arrow} has no Glue equivalent; write the lake with lake/schema.py types")


def json_line_type(arrow: pa.DataType) -> str:
    """Pure: the type a column has in a JSON-lines table, as Glue's JSON classifier types it.

    Timestamps are ISO-8601 strings in the JSON lines and money is a JSON number: the local
    crawler (and so analytics) sees them as string and double; the aws table says the same.
    """
    if pa.types.is_timestamp(arrow):
        return "string"
    if pa.types.is_decimal(arrow):
        return "double"
    return glue_type(arrow)


_SIMPLE_TO_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "varchar": pa.string(),
    "char": pa.string(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("ms"),
    "date": pa.date32(),
    "binary": pa.binary(),
}
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def arrow_type(glue: str) -> pa.DataType:
    """Pure: a Glue/Hive type string ('decimal(12,2)', 'array<string>', 'struct<a:int>') to Arrow."""
    text = glue.strip().lower()
    if text in _SIMPLE_TO_ARROW:
        return _SIMPLE_TO_ARROW[text]
    if text.startswith(("varchar(", "char(")):
        return pa.string()
    match = _DECIMAL.match(text)
    if match:
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    if text == "decimal":
        return pa.decimal128(10, 0)  # Hive's default precision and scale
    if text.startswith("array<") and text.endswith(">"):
        return pa.list_(arrow_type(text[6:-1]))
    if text.startswith("map<") and text.endswith(">"):
        key, value = _split_top_level(text[4:-1])
        return pa.map_(arrow_type(key), arrow_type(value))
    if text.startswith("struct<") and text.endswith(">"):
        fields = []
        for part in _split_top_level(text[7:-1]):
            name, _, kind = part.partition(":")
            fields.append(pa.field(name.strip(), arrow_type(kind)))
        return pa.struct(fields)
    raise TerminalError(f"Glue column type {glue!r} is not supported by the local engine; fix the table")


def arrow_schema(columns: Columns) -> pa.Schema:
    """Pure: Glue columns as the Arrow schema the objects are written and read with."""
    return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in columns])


# --- the table's columns -----------------------------------------------------------------------


def contract_columns(data_format: str = "parquet", schema: pa.Schema = ROW_SCHEMA) -> Columns:
    """Pure: the row contract's columns (partition keys excluded) as the table declares them for a format."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data format {data_format!r} is unknown; use one of {', '.join(DATA_FORMATS)}")
    typed = glue_type if data_format == "parquet" else json_line_type
    return tuple((f.name.lower(), typed(f.type)) for f in schema)


def glue_columns(data_format: str = "parquet", schema: pa.Schema = ROW_SCHEMA) -> list[dict[str, str]]:
    """Pure: the contract's columns in CreateTable's shape."""
    return [{"Name": name, "Type": kind} for name, kind in contract_columns(data_format, schema)]


def partition_columns() -> list[dict[str, str]]:
    """year/month/day as strings: the Hive folder values ('2024', '01', '09'), as the crawler types them."""
    return [{"Name": k, "Type": "string"} for k in PARTITION_KEYS]


def table_columns(table: Mapping[str, Any]) -> Columns:
    """Pure: the data columns of a GetTable `Table` (or a TableInput), names and types lowercased as Glue keeps them."""
    storage = table.get("StorageDescriptor") or {}
    return tuple((str(c["Name"]).lower(), str(c["Type"]).lower()) for c in storage.get("Columns") or [])


def conversion_schema(table: Mapping[str, Any]) -> pa.Schema:
    """The Arrow schema Firehose's record-format conversion writes for this table: its data columns, in order."""
    columns = table_columns(table)
    try:
        return arrow_schema(columns)
    except TerminalError:
        bad = [f"{n} {t}" for n, t in columns if not _convertible(t)]
        raise TerminalError(
            f"Glue table {table.get('DatabaseName', '')}.{table.get('Name', '')} has column(s) the local "
            f"converter cannot write ({', '.join(bad)}); use Hive types (string, bigint, decimal(p,s), "
            "timestamp, boolean, double, array<>, map<>, struct<>)"
        ) from None


def _convertible(kind: str) -> bool:
    try:
        arrow_type(kind)
    except TerminalError:
        return False
    return True


# --- TableInput, StorageDescriptor, PartitionInput -------------------------------------------


def format_parameters(data_format: str, compressed: bool | None = None) -> dict[str, str]:
    """The parameters AWS's crawler writes for this format (Athena reads `classification`)."""
    compressed = data_format == "json" if compressed is None else compressed
    return {"classification": data_format, "compressionType": "gzip" if compressed else "none",
            "typeOfData": "file"}


def crawler_parameters(crawler_name: str, object_count: int, size: int) -> dict[str, str]:
    """Pure: what a crawler run adds to the table's parameters (the keys of CRAWLER_PARAMETERS)."""
    return {"UPDATED_BY_CRAWLER": crawler_name, "objectCount": str(object_count), "sizeKey": str(size)}


def projection_parameters(location: str) -> dict[str, str]:
    """Pure: Athena partition projection over the Hive layout year=YYYY/month=MM/day=DD."""
    first, last = PROJECTION_YEARS
    return {
        "projection.enabled": "true",
        "projection.year.type": "integer",
        "projection.year.range": f"{first},{last}",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.month.digits": "2",
        "projection.day.type": "integer",
        "projection.day.range": "1,31",
        "projection.day.digits": "2",
        "storage.location.template": f"{location}year=${{year}}/month=${{month}}/day=${{day}}/",
    }


def storage_descriptor(location: str, data_format: str, columns: Columns | None = None,
                       compressed: bool | None = None) -> dict[str, Any]:
    """Pure: the StorageDescriptor of the lake table or of one of its partitions.

    Defaults: the row contract's columns, and gzip exactly for JSON lines (what the pipeline writes).
    No buckets and no sort columns, as a crawler writes them (NumberOfBuckets -1).
    """
    columns = contract_columns(data_format) if columns is None else columns
    compressed = data_format == "json" if compressed is None else compressed
    storage = STORAGE[data_format]
    serde = ({"serialization.format": "1"} if data_format == "parquet"
             else {"paths": ",".join(name for name, _ in columns)})
    return {
        "Columns": [{"Name": name, "Type": kind} for name, kind in columns],
        "Location": location,
        "InputFormat": storage["InputFormat"],
        "OutputFormat": storage["OutputFormat"],
        "Compressed": compressed,
        "NumberOfBuckets": -1,
        "SerdeInfo": {"SerializationLibrary": storage["SerializationLibrary"], "Parameters": serde},
        "BucketColumns": [],
        "SortColumns": [],
        "Parameters": format_parameters(data_format, compressed),
        "StoredAsSubDirectories": False,
    }


def table_input(
    name: str, location: str, data_format: str, projection: bool = False,
    extra_parameters: Mapping[str, str] | None = None, *, columns: Columns | None = None,
    compressed: bool | None = None,
) -> dict[str, Any]:
    """Pure: the TableInput of CreateTable/UpdateTable for the lake's change-log table."""
    parameters = {**format_parameters(data_format, compressed), "EXTERNAL": "TRUE", **(extra_parameters or {})}
    if projection:
        parameters.update(projection_parameters(location))
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "StorageDescriptor": storage_descriptor(location, data_format, columns, compressed),
        "PartitionKeys": partition_columns(),
    }


def partition_input(location: str, values: Sequence[str], data_format: str, columns: Columns | None = None,
                    compressed: bool | None = None) -> dict[str, Any]:
    """Pure: one PartitionInput under the table's `location`; its schema is the table's (InheritFromTable)."""
    folders = "/".join(f"{k}={v}" for k, v in zip(PARTITION_KEYS, values, strict=True))
    return {
        "Values": list(values),
        "StorageDescriptor": storage_descriptor(f"{location}{folders}/", data_format, columns, compressed),
        "Parameters": format_parameters(data_format, compressed),
    }


def with_columns(table: Mapping[str, Any], columns: Columns) -> dict[str, Any]:
    """Pure: a copy of a TableInput whose StorageDescriptor holds `columns` (a JSON table's SerDe paths follow)."""
    storage = dict(table.get("StorageDescriptor") or {})
    storage["Columns"] = [{"Name": name, "Type": kind} for name, kind in columns]
    serde = dict(storage.get("SerdeInfo") or {})
    parameters = dict(serde.get("Parameters") or {})
    if "paths" in parameters:
        parameters["paths"] = ",".join(name for name, _ in columns)
        serde["Parameters"] = parameters
        storage["SerdeInfo"] = serde
    return {**table, "StorageDescriptor": storage}


# --- the table's current schema, as the converter reads it -------------------------------------


class TableSchema:
    """The Arrow schema record-format conversion uses now: the Glue table's columns (VersionId LATEST).

    GetTable at the first use, again once `interval` seconds have passed, and at once when rows carry
    an attribute the last answer did not have (at most one GetTable per new attribute name per interval,
    so a producer's undeclared attribute costs one call, not one per flush). A table that does not exist
    (yet) converts with the columns the bootstrap declares (the row contract) until it does; a failed
    GetTable keeps the last schema and is tried again at the next use; with no schema yet it raises.
    """

    def __init__(self, glue: Any, database: str, table: str, *, interval: float = SCHEMA_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.glue, self.database, self.table = glue, database, table
        self.interval, self.clock = interval, clock
        self.schema: pa.Schema | None = None
        self.version_id = ""  # the table version the schema came from ('' when declared, not read)
        self.missing = False  # the table did not exist at the last GetTable
        self.loads = 0
        self._loaded_at = 0.0
        self._known: set[str] = set()  # the schema's column names and the attribute names already asked about

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.table}"

    def for_rows(self, rows: Iterable[Mapping[str, Any]]) -> pa.Schema:
        """The schema to convert `rows` with."""
        now = self.clock()
        if self.schema is None or now - self._loaded_at >= self.interval:
            self._load(now, set())
        else:
            names: set[str] = set()
            for row in rows:
                names.update(row)
            unknown = {str(name).lower() for name in names} - self._known
            if unknown:
                self._load(now, unknown)
        assert self.schema is not None
        return self.schema

    def known(self) -> pa.Schema | None:
        """The schema for_rows gives rows that hold only its columns, without reading the table; None when a
        read is due (the first, or the timed one), which for_rows makes."""
        if self.schema is None or self.clock() - self._loaded_at >= self.interval:
            return None
        return self.schema

    def _load(self, now: float, asked: set[str]) -> None:
        try:
            table = self.glue.get_table(DatabaseName=self.database, Name=self.table)["Table"]
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            if code != "EntityNotFoundException":
                if self.schema is None:
                    raise
                return  # keep converting with the last schema; the next use asks again
            schema, version, missing = arrow_schema(contract_columns("parquet")), "", True
        else:
            schema, version, missing = conversion_schema(table), str(table.get("VersionId", "")), False
        self.schema, self.version_id, self.missing = schema, version, missing
        # a timed read starts afresh; a read for new attribute names remembers them until the next timed one
        self._known = set(schema.names) | (self._known | asked if asked else set())
        self._loaded_at = now
        self.loads += 1
