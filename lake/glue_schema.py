"""The lake's Glue table, declared from lake/schema.py ROW_SCHEMA (the `aws` target creates it).

On AWS, Firehose's record-format conversion reads the schema of a Glue table to turn the
transform's JSON rows into Parquet, so that table must exist before the first delivery; the
bootstrap declares it from the row contract instead of waiting for a crawler. On the emulated
targets the local crawler creates the table from the objects, and this module produces the
same shape it writes (same SerDe, formats, parameters, partition keys), so analytics reads
either alike.
- Record format conversion: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html
- Athena data types: https://docs.aws.amazon.com/athena/latest/ug/data-types.html
- Partition projection: https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from common.errors import TerminalError
from lake.schema import PARTITION_KEYS, ROW_SCHEMA

DATA_FORMATS = ("parquet", "json")
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
# Years Athena projects when partition projection is on: a bounded range keeps unfiltered
# queries from listing decades of empty prefixes.
PROJECTION_YEARS = (2024, 2035)


def glue_type(arrow: pa.DataType) -> str:
    """Pure: the Glue/Hive type of an Arrow type, as Athena's Parquet reader (and Firehose's converter) expects.

    One mapping for the whole project: the bootstrap's table, the crawler's inference and analytics use it.
    """
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


def glue_columns(data_format: str = "parquet", schema: pa.Schema = ROW_SCHEMA) -> list[dict[str, str]]:
    """Pure: the data columns (partition keys excluded) of the table for one lake format."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data format {data_format!r} is unknown; use one of {', '.join(DATA_FORMATS)}")
    typed = glue_type if data_format == "parquet" else json_line_type
    return [{"Name": f.name.lower(), "Type": typed(f.type)} for f in schema]


def partition_columns() -> list[dict[str, str]]:
    """year/month/day as strings: the Hive folder values ('2024', '01', '09'), as the crawler types them."""
    return [{"Name": k, "Type": "string"} for k in PARTITION_KEYS]


def format_parameters(data_format: str) -> dict[str, str]:
    """The table parameters AWS's crawler writes for this format (Athena reads `classification`)."""
    compressed = data_format == "json"
    return {"classification": data_format, "compressionType": "gzip" if compressed else "none",
            "typeOfData": "file"}


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


def storage_descriptor(location: str, data_format: str) -> dict[str, Any]:
    """Pure: the StorageDescriptor of the lake table (same shape the local crawler writes)."""
    columns = glue_columns(data_format)
    storage = STORAGE[data_format]
    serde = ({"serialization.format": "1"} if data_format == "parquet"
             else {"paths": ",".join(c["Name"] for c in columns)})
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": storage["InputFormat"],
        "OutputFormat": storage["OutputFormat"],
        "Compressed": data_format == "json",
        "SerdeInfo": {"SerializationLibrary": storage["SerializationLibrary"], "Parameters": serde},
        "Parameters": format_parameters(data_format),
        "StoredAsSubDirectories": False,
    }


def table_input(
    name: str, location: str, data_format: str, projection: bool = False,
    extra_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Pure: the TableInput of CreateTable/UpdateTable for the lake's change-log table."""
    parameters = {**format_parameters(data_format), "EXTERNAL": "TRUE", **(extra_parameters or {})}
    if projection:
        parameters.update(projection_parameters(location))
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "StorageDescriptor": storage_descriptor(location, data_format),
        "PartitionKeys": partition_columns(),
    }
