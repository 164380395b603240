"""DuckDB as the local mirror of Athena: the Glue table registered from the catalog, plus the views.

How DuckDB reaches the lake (docs/decisions.md section 3, measured on MiniStack):
- `arrow` (default): a `pyarrow.dataset` over `pyarrow.fs.S3FileSystem` (endpoint override on
  the emulated targets, the standard chain on aws) with Hive partitioning (year/month/day as
  strings) and the catalog's column types, registered in DuckDB. DuckDB pushes projections and
  filters into the dataset, so a one-day query opens only that day's objects. Gzip JSON lines
  work the same way: Arrow's JSON dataset format decompresses `.gz` objects by extension.
- `httpfs`: DuckDB's own S3 reader, used only where `LOAD httpfs` succeeds (it cannot be
  downloaded offline, and on MiniStack it leaked sockets), so `auto` picks it only on aws.
- `local`: the same Arrow dataset over a directory laid out like the bucket (tests, benchmarks).

Per object, the emulator's fixed cost per request dominates a small-object lake, so the Arrow
dataset is built to send few: each fragment knows its size from the listing (no HEAD per
object), column chunks are fetched in one coalesced ranged GET where the gap between them is
cheaper to read than to skip (Arrow's CacheOptions from network metrics), and `cache_footers`
reads each footer once per engine instead of once per query (measured on MiniStack: 4 requests
per object and query, then 3, 2, and 1).

The registered table is `"<glue database>"."<glue table>"`, the very name the KPI SQL uses on
Athena; the views `sales_orders_cdc`, `sales_orders_current` and `sales_daily` sit on top.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from analytics.catalog import TableInfo, arrow_schema, arrow_type, load_table, local_table_info, quote_identifier
from analytics.dialect import to_duckdb
from analytics.python_filesystem import PythonFilesystemDataset
from analytics.views import SQL_DIR, VIEW_NAMES, view_sql
from common.aws import DUMMY_CREDENTIALS, Clients
from common.config import Settings
from common.console import Console
from common.errors import ConfigError, TerminalError

ACCESS_CHOICES = ("auto", "arrow", "httpfs")
_ARROW_RELATION = "__lake_arrow"
FOOTER_THREADS = 16
# Coalesce ranged reads as S3's guidance suggests (8-16 MB ranges; a gap under ~2 MB costs less
# to read than a new request's first-byte latency): Arrow derives both limits from these metrics.
PARQUET_SCAN = ds.ParquetFragmentScanOptions(
    pre_buffer=True,
    cache_options=pa.CacheOptions.from_network_metrics(
        time_to_first_byte_millis=20, transfer_bandwidth_mib_per_sec=100
    ),
)


@dataclass
class Engine:
    """An open DuckDB connection with the lake and the views; close it (or use `with`)."""

    conn: duckdb.DuckDBPyConnection
    table: TableInfo
    access: str  # "arrow-s3" | "arrow-local" | "httpfs"
    dataset: ds.Dataset | None = None
    notes: list[str] = field(default_factory=list)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params or []).fetchall()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    """Arrow's S3 client for the target: the emulator's endpoint over http, or real S3."""
    if settings.endpoint_url is None:
        return pafs.S3FileSystem(region=settings.region)
    return pafs.S3FileSystem(
        access_key=DUMMY_CREDENTIALS["aws_access_key_id"],
        secret_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        region=settings.region,
        endpoint_override=f"{settings.host}:{settings.port}",
        scheme="http",
    )


def partitioning(table: TableInfo) -> ds.Partitioning:
    return ds.partitioning(
        pa.schema([pa.field(k.name, arrow_type(k.type)) for k in table.partition_keys]), flavor="hive"
    )


def in_layout(relative_path: str, keys: tuple[str, ...]) -> bool:
    """Pure: is this path (relative to the table location) a data object in the Hive layout?

    Athena reads a partitioned table through its partitions' folders, so objects beside them
    (a stray file at the root, `_SUCCESS`, `.tmp` names) are not part of the table.
    """
    parts = relative_path.split("/")
    if len(parts) != len(keys) + 1 or not parts[-1] or parts[-1].startswith(("_", ".")):
        return False
    return all(folder.startswith(f"{key}=") and len(folder) > len(key) + 1
               for folder, key in zip(parts[:-1], keys, strict=True))


def lake_dataset(table: TableInfo, filesystem: pafs.FileSystem, root: str) -> ds.Dataset:
    """The table's objects as one Arrow dataset, read with the catalog's schema.

    `root` is "bucket/prefix" on S3 or a local directory. Every partition folder under it is
    read, registered in Glue or not: the mirror is never behind the lake (Athena sees a new
    partition only once the crawler added it).
    """
    root = root.rstrip("/")
    schema = arrow_schema(table)
    full_schema = pa.schema(list(schema) + [pa.field(k.name, arrow_type(k.type)) for k in table.partition_keys])
    if table.data_format == "parquet":
        fmt: ds.FileFormat = ds.ParquetFileFormat(default_fragment_scan_options=PARQUET_SCAN)
    else:
        import pyarrow.json as pajson

        fmt = ds.JsonFileFormat(
            parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        )
    keys = tuple(k.name for k in table.partition_keys)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise TerminalError(f"cannot list the lake at {root}: {exc}; check the table location") from None
    objects = sorted(
        (info for info in infos
         if info.type == pafs.FileType.File and info.size and in_layout(info.path[len(root) + 1:], keys)),
        key=lambda info: info.path,
    )
    hive = partitioning(table)
    fragments = [fmt.make_fragment(info.path, filesystem, hive.parse(info.path[len(root):]), file_size=info.size)
                 for info in objects]
    # A Python filesystem (the tests' and the bench's counting wrapper) needs scans that cannot hang.
    dataset_class = PythonFilesystemDataset if isinstance(filesystem, pafs.PyFileSystem) else ds.FileSystemDataset
    return dataset_class(fragments, full_schema, fmt, filesystem)


def cache_footers(dataset: ds.Dataset, threads: int = FOOTER_THREADS) -> int:
    """Read every Parquet footer now, in parallel, and keep it in its fragment; returns how many.

    Worth it when one engine runs several full scans (the KPI report): each later scan then
    fetches only column data. A single pruned query is better off without it (it would read
    footers of objects it never scans).
    """
    fragments = [f for f in dataset.get_fragments() if isinstance(f, ds.ParquetFileFragment)]
    with ThreadPoolExecutor(max_workers=threads) as pool:  # the read releases the GIL
        list(pool.map(lambda fragment: fragment.ensure_complete_metadata(), fragments))
    return len(fragments)


def _connect() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(":memory:")
    # Timestamps in the lake are UTC wall times; keep any TIMESTAMPTZ conversion in UTC too.
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def create_views(conn: duckdb.DuckDBPyConnection, table: TableInfo, sql_dir: Path = SQL_DIR) -> None:
    """CREATE VIEW for sales_orders_cdc, sales_orders_current, sales_daily (transpiled from Athena SQL)."""
    for name in VIEW_NAMES:
        conn.execute(f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS {to_duckdb(view_sql(name, table, sql_dir))}")


def _register_table(conn: duckdb.DuckDBPyConnection, table: TableInfo, relation_sql: str) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.database)}")
    conn.execute(f"CREATE OR REPLACE VIEW {table.qualified_name} AS SELECT * FROM {relation_sql}")


def _attach_arrow(conn: duckdb.DuckDBPyConnection, table: TableInfo, dataset: ds.Dataset) -> None:
    conn.register(_ARROW_RELATION, dataset)
    _register_table(conn, table, _ARROW_RELATION)


def try_httpfs(conn: duckdb.DuckDBPyConnection) -> str | None:
    """Load DuckDB's httpfs extension if it is available here; the reason when it is not."""
    try:
        conn.execute("LOAD httpfs")
        return None
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def httpfs_relation(table: TableInfo) -> str:
    """Pure: DuckDB's own reader over the table location (Hive partitions typed as the catalog says).

    The glob matches the lake contract's object names (Firehose names plus .parquet / .gz).
    """
    folders = "".join("*/" for _ in table.partition_keys)
    name = "*.parquet" if table.data_format == "parquet" else "*.gz" if table.compressed else "*"
    pattern = _sql_string(f"{table.location}{folders}{name}")
    hive_types = ", ".join(f"{_sql_string(k.name)}: VARCHAR" for k in table.partition_keys)
    hive = f"hive_partitioning = true, hive_types = {{{hive_types}}}" if hive_types else "hive_partitioning = false"
    if table.data_format == "parquet":
        return f"read_parquet({pattern}, union_by_name = true, {hive})"
    columns = ", ".join(f"{_sql_string(c.name)}: {_sql_string(_duckdb_json_type(c.type))}" for c in table.columns)
    return f"read_json({pattern}, format = 'newline_delimited', columns = {{{columns}}}, {hive})"


def _duckdb_json_type(glue_type: str) -> str:
    return {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
            "boolean": "BOOLEAN", "float": "FLOAT", "timestamp": "TIMESTAMP"}.get(glue_type, glue_type.upper())


def _configure_httpfs(conn: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    if settings.endpoint_url is None:
        conn.execute("CREATE OR REPLACE SECRET lake (TYPE S3, PROVIDER credential_chain, "
                     f"REGION {_sql_string(settings.region)})")
        return
    conn.execute(
        "CREATE OR REPLACE SECRET lake (TYPE S3, KEY_ID 'test', SECRET 'test', "
        f"ENDPOINT {_sql_string(f'{settings.host}:{settings.port}')}, URL_STYLE 'path', USE_SSL false, "
        f"REGION {_sql_string(settings.region)})"
    )


def choose_access(requested: str, settings: Settings, httpfs_error: str | None) -> tuple[str, str]:
    """Pure: which path to use and why. `auto` = httpfs only on aws when it loads, else Arrow."""
    if requested not in ACCESS_CHOICES:
        raise ConfigError(f"engine access {requested!r} is unknown; use one of {', '.join(ACCESS_CHOICES)}")
    if requested == "httpfs":
        if httpfs_error:
            raise TerminalError(f"DuckDB's httpfs extension does not load here ({httpfs_error}); use access=arrow")
        return "httpfs", "httpfs requested"
    if requested == "arrow":
        return "arrow-s3", "arrow requested"
    if settings.emulated:
        return "arrow-s3", "emulated target: Arrow S3 (httpfs leaks sockets on MiniStack)"
    if httpfs_error:
        return "arrow-s3", f"httpfs unavailable ({httpfs_error})"
    return "httpfs", "httpfs loaded"


def open_engine(
    clients: Clients,
    settings: Settings,
    console: Console | None = None,
    table: TableInfo | None = None,
    access: str = "auto",
    filesystem: pafs.FileSystem | None = None,
    sql_dir: Path = SQL_DIR,
    footers: bool = False,
) -> Engine:
    """DuckDB over the lake in S3, as the Glue catalog describes it, with the three views.

    `filesystem` replaces Arrow's S3 client (tests pass a counting wrapper to prove pruning);
    `footers` reads every footer up front (see cache_footers) for engines that scan many times.
    """
    table = table or load_table(clients, settings)
    if not table.location.startswith("s3://"):
        raise TerminalError(f"table location {table.location} is not on S3; use open_local_engine for directories")
    conn = _connect()
    try:
        wants_httpfs = access == "httpfs" or (access == "auto" and not settings.emulated)
        httpfs_error = try_httpfs(conn) if wants_httpfs else "not tried"
        chosen, why = choose_access(access, settings, httpfs_error)
        engine = Engine(conn, table, chosen, notes=[why])
        if chosen == "httpfs":
            try:
                _configure_httpfs(conn, settings)
                _register_table(conn, table, httpfs_relation(table))
            except duckdb.Error as exc:  # e.g. the credential_chain provider needs the aws extension
                if access == "httpfs":
                    raise TerminalError(f"httpfs cannot reach the lake: {str(exc).splitlines()[0]}") from None
                chosen, why = "arrow-s3", f"httpfs failed ({str(exc).splitlines()[0]})"
                engine.access, engine.notes = chosen, [why]
        if chosen != "httpfs":
            fs = filesystem or s3_filesystem(settings)
            engine.dataset = lake_dataset(table, fs, f"{table.bucket}/{table.prefix}")
            if footers:
                cache_footers(engine.dataset)
            _attach_arrow(conn, table, engine.dataset)
        create_views(conn, table, sql_dir)
    except BaseException:
        conn.close()
        raise
    if console is not None:
        console.detail(f"DuckDB reads s3://{table.bucket}/{table.prefix} via {chosen} ({why})")
    return engine


def open_local_engine(
    lake_dir: Path,
    table: TableInfo | None = None,
    data_format: str = "parquet",
    filesystem: pafs.FileSystem | None = None,
    sql_dir: Path = SQL_DIR,
    footers: bool = False,
) -> Engine:
    """The same views over a directory laid out like the bucket's prefix (year=/month=/day=)."""
    root = Path(lake_dir).resolve()
    if not root.is_dir():
        raise TerminalError(f"lake directory {root} does not exist; write the lake there first")
    table = table or local_table_info(str(root), data_format)
    conn = _connect()
    try:
        dataset = lake_dataset(table, filesystem or pafs.LocalFileSystem(), str(root))
        if footers:
            cache_footers(dataset)
        _attach_arrow(conn, table, dataset)
        create_views(conn, table, sql_dir)
    except BaseException:
        conn.close()
        raise
    return Engine(conn, table, "arrow-local", dataset=dataset, notes=[f"local directory {root}"])
