"""The local Glue crawler: infer the lake's schema from its objects, then create or update the table.

What AWS's crawler does, and so what this does (emulated targets only; on aws the real one runs):
- Walks the S3 include path; Hive-style folders `year=/month=/day=` become the partition keys
  (type string) and each leaf folder a partition, when the files share a format and schema.
  https://docs.aws.amazon.com/glue/latest/dg/crawler-s3-folder-table-partition.html
- Infers the schema from the objects: Parquet from the footer; JSON lines (gzip or not) from a
  sample of records, typed like Glue's JSON classifier (int/bigint, double, boolean, string,
  array<...>, struct<...>; timestamps stay strings).
  https://docs.aws.amazon.com/glue/latest/dg/add-classifier.html
- New tables and new partitions are always added; existing partitions are left as they are (AWS's
  InheritFromTable would rewrite them with the table's metadata: a deviation, common/deviations.py).
- Schema changes follow the crawler's SchemaChangePolicy and Configuration: with
  UPDATE_IN_DATABASE and "Add new columns only" (CrawlerOutput.Tables.AddOrUpdateBehavior =
  MergeNewColumns, our default) new columns are appended and a changed type is reported but not
  applied; without MergeNewColumns the table takes the inferred columns; with LOG nothing
  changes and the differences are reported. RecrawlBehavior CRAWL_NEW_FOLDERS_ONLY reads only
  new partitions and forces LOG, as AWS does.
  https://docs.aws.amazon.com/glue/latest/dg/crawler-configuration.html
  https://docs.aws.amazon.com/glue/latest/dg/crawler-schema-changes-prevent.html
  https://docs.aws.amazon.com/glue/latest/dg/incremental-crawls.html
- Objects outside the Hive layout (or named `_*` / `.*`) are not part of the table; neither is
  anything under the error prefix, which lies outside the include path. An object in the layout that
  no classifier recognises (neither readable Parquet nor JSON lines) is UNKNOWN: skipped with a
  warning naming it, and the crawl goes on (a folder of nothing else is no partition).
- A catalog target (Targets.CatalogTargets) crawls the named table's own Location.
Deviations: with an S3 target the table is named settings.glue_table (AWS would name it after the
folder); MiniStack ignores GetPartitions' Expression, so existing partitions are listed and
compared client-side.

Pure functions (key parsing, type inference, schema merge) sit apart from the thin S3/Glue shell
`crawl`. The table and its partitions are built by lake/glue_schema.py, the one module that owns the
Glue table (the `aws` bootstrap declares it with the same builders), plus the parameters a crawler
adds (UPDATED_BY_CRAWLER, objectCount, sizeKey).
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.aws import Clients, error_code, retrying
from common.config import Settings
from common.console import Console
from common.errors import TerminalError
from common.state_dir import read_spec, runner_spec_file
from lake.glue_schema import STORAGE, Columns, crawler_parameters, glue_type, partition_input, table_input
from lake.partitions import partition_values
from lake.schema import PARTITION_KEYS

JSON_SAMPLE_RECORDS = 1000  # records read per JSON object to infer its schema
PARTITION_BATCH = 100  # BatchCreatePartition accepts at most 100 partitions per call
_INT_RANK = {"tinyint": 0, "smallint": 1, "int": 2, "bigint": 3}
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


# --- what to crawl and how ---------------------------------------------------------------------


@dataclass(frozen=True)
class CrawlerSpec:
    """The parts of a CreateCrawler request this runner honours."""

    database: str
    table: str
    s3_path: str  # s3://bucket/prefix/
    crawler_name: str = "local-crawler"
    update_behavior: str = "UPDATE_IN_DATABASE"  # or LOG
    merge_new_columns: bool = True  # CrawlerOutput.Tables.AddOrUpdateBehavior = MergeNewColumns
    recrawl: str = "CRAWL_EVERYTHING"  # or CRAWL_NEW_FOLDERS_ONLY

    @property
    def bucket(self) -> str:
        return self.s3_path[len("s3://"):].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.s3_path[len("s3://"):].split("/", 1)
        prefix = rest[1] if len(rest) > 1 else ""
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def spec_from_settings(settings: Settings, account_id: str) -> CrawlerSpec:
    return CrawlerSpec(
        database=settings.glue_database,
        table=settings.glue_table,
        s3_path=f"s3://{settings.lake_bucket_for(account_id)}/{settings.lake_prefix}",
        crawler_name=settings.crawler_name,
    )


def spec_from_request(request: Mapping[str, Any], table: str) -> CrawlerSpec:
    """Pure: a CreateCrawler request (as the bootstrap sends it to AWS) to the runner's spec.

    An S3 target names the path (the table is `table`); a catalog target names the table, whose
    Location `crawl` then reads from Glue (s3_path is left empty here).
    """
    targets = request.get("Targets") or {}
    s3_targets, catalog_targets = targets.get("S3Targets") or [], targets.get("CatalogTargets") or []
    database = str(request.get("DatabaseName", ""))
    if len(catalog_targets) == 1 and len(catalog_targets[0].get("Tables") or []) == 1 and not s3_targets:
        database, table, s3_path = str(catalog_targets[0]["DatabaseName"]), str(catalog_targets[0]["Tables"][0]), ""
    elif len(s3_targets) == 1 and str(s3_targets[0].get("Path", "")).startswith("s3://") and not catalog_targets:
        s3_path = str(s3_targets[0]["Path"])
    else:
        raise TerminalError(
            "the crawler request needs exactly one Targets.S3Targets[].Path s3://bucket/prefix/ "
            "or one Targets.CatalogTargets[] with one table"
        )
    configuration = request.get("Configuration") or "{}"
    try:
        config = json.loads(configuration) if isinstance(configuration, str) else dict(configuration)
    except json.JSONDecodeError:
        raise TerminalError("the crawler's Configuration is not valid JSON; fix the crawler request") from None
    tables = ((config.get("CrawlerOutput") or {}).get("Tables") or {}).get("AddOrUpdateBehavior")
    return CrawlerSpec(
        database=database,
        table=table,
        s3_path=s3_path,
        crawler_name=str(request.get("Name", "local-crawler")),
        update_behavior=str((request.get("SchemaChangePolicy") or {}).get("UpdateBehavior", "UPDATE_IN_DATABASE")),
        merge_new_columns=tables == "MergeNewColumns",
        recrawl=str((request.get("RecrawlPolicy") or {}).get("RecrawlBehavior", "CRAWL_EVERYTHING")),
    )


def load_crawler_spec(clients: Clients, settings: Settings) -> CrawlerSpec:
    """The bootstrap's CreateCrawler request for this runner if it wrote one, else from settings."""
    request = read_spec(runner_spec_file(settings.runner_dir, "crawler"))
    if request is not None:
        return spec_from_request(request, settings.glue_table)
    return spec_from_settings(settings, clients.account_id)


# --- pure: keys, formats, types ----------------------------------------------------------------


def format_of(key: str, head: bytes = b"") -> tuple[str, bool] | None:
    """(format, gzip-compressed) from the object's name, else from its first bytes; None if neither."""
    name = key.rsplit("/", 1)[-1].lower()
    if name.endswith(".parquet"):
        return "parquet", False
    if name.endswith((".json.gz", ".jsonl.gz", ".gz")):
        return "json", True
    if name.endswith((".json", ".jsonl")):
        return "json", False
    if head.startswith(b"PAR1"):
        return "parquet", False
    if head.startswith(b"\x1f\x8b"):
        return "json", True
    if head.lstrip()[:1] == b"{":
        return "json", False
    return None


def parquet_columns(schema: pa.Schema) -> Columns:
    """Pure: a Parquet file's Arrow schema to Glue columns (names lowercased, as Glue stores them)."""
    return tuple((f.name.lower(), glue_type(f.type)) for f in schema)


def _json_kind(value: Any) -> Any:
    """A JSON value's type: a Glue type string, ('struct', {name: kind}), ('array', kind), or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        element = None
        for item in value:
            element = _merge_json_kinds(element, _json_kind(item))
        return ("array", element)
    if isinstance(value, dict):
        return ("struct", {str(k).lower(): _json_kind(v) for k, v in value.items()})
    return "string"


def _merge_json_kinds(a: Any, b: Any) -> Any:
    """Two samples of one JSON field: numbers widen, structs union their fields, else string."""
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "array":
            return ("array", _merge_json_kinds(a[1], b[1]))
        fields = dict(a[1])
        for name, kind in b[1].items():
            fields[name] = _merge_json_kinds(fields.get(name), kind)
        return ("struct", fields)
    if isinstance(a, str) and isinstance(b, str):
        return widen(a, b) or "string"
    return "string"


def _json_type_text(kind: Any) -> str:
    if kind is None:
        return "string"  # never seen with a value: Glue falls back to string
    if isinstance(kind, str):
        return kind
    if kind[0] == "array":
        return f"array<{_json_type_text(kind[1])}>"
    return "struct<" + ",".join(f"{name}:{_json_type_text(k)}" for name, k in kind[1].items()) + ">"


def infer_json_columns(records: Iterable[Mapping[str, Any]]) -> Columns:
    """Pure: Glue-classifier-style columns of JSON records, in order of first appearance."""
    kinds: dict[str, Any] = {}
    for record in records:
        if not isinstance(record, Mapping):
            raise TerminalError("a JSON line is not an object; the lake holds one JSON object per line")
        for name, value in record.items():
            key = str(name).lower()
            kinds[key] = _merge_json_kinds(kinds.get(key), _json_kind(value))
    return tuple((name, _json_type_text(kind)) for name, kind in kinds.items())


def widen(a: str, b: str) -> str | None:
    """Pure: the type that holds values of both `a` and `b`, or None when they are incompatible."""
    if a == b:
        return a
    if a in _INT_RANK and b in _INT_RANK:
        return a if _INT_RANK[a] >= _INT_RANK[b] else b
    numeric = set(_INT_RANK) | {"float", "double"}
    if a in numeric and b in numeric:
        return "double"
    da, db = _DECIMAL.match(a), _DECIMAL.match(b)
    if da and db:
        (pa_, sa), (pb, sb) = (int(da[1]), int(da[2])), (int(db[1]), int(db[2]))
        scale = max(sa, sb)
        precision = min(38, max(pa_ - sa, pb - sb) + scale)
        return f"decimal({precision},{scale})"
    return None


# --- pure: schema merge --------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeConflict:
    column: str
    table_type: str  # what the table has (or the first object had)
    found_type: str
    where: str  # the object key that disagrees

    def describe(self) -> str:
        return f"column {self.column}: table has {self.table_type}, {self.where} has {self.found_type}"


@dataclass(frozen=True)
class SchemaMerge:
    columns: Columns  # the table's columns after this crawl
    added: tuple[str, ...] = ()
    conflicts: tuple[TypeConflict, ...] = ()
    changed: bool = False  # columns differ from what the table had


def merge_object_schemas(schemas: Sequence[tuple[str, Columns]]) -> tuple[Columns, tuple[TypeConflict, ...]]:
    """Pure: one schema for all objects (in key order): new columns appended, numbers widened,
    incompatible types kept as first seen and reported."""
    merged: dict[str, str] = {}
    conflicts = []
    for key, columns in schemas:
        for name, kind in columns:
            if name not in merged:
                merged[name] = kind
                continue
            wider = widen(merged[name], kind)
            if wider is None:
                conflicts.append(TypeConflict(name, merged[name], kind, key))
            else:
                merged[name] = wider
    return tuple(merged.items()), tuple(conflicts)


def merge_with_table(
    existing: Columns | None, inferred: Columns, merge_new_columns: bool = True,
    inferred_conflicts: Sequence[TypeConflict] = (),
) -> SchemaMerge:
    """Pure: the table's next columns under the crawler's policy.

    MergeNewColumns: keep every existing column and its type, append new ones; a type that the
    table's type cannot hold (e.g. bigint -> string) is a conflict, reported, not applied.
    Without it (plain UPDATE_IN_DATABASE) the table takes the inferred columns as they are.
    """
    if existing is None:
        return SchemaMerge(inferred, tuple(n for n, _ in inferred), tuple(inferred_conflicts), True)
    current = dict(existing)
    added = tuple(n for n, _ in inferred if n not in current)
    conflicts = list(inferred_conflicts)
    for name, kind in inferred:
        if name in current and widen(current[name], kind) != current[name]:
            conflicts.append(TypeConflict(name, current[name], kind, "the crawled objects"))
    appended = tuple(existing) + tuple((n, k) for n, k in inferred if n in added)
    columns = appended if merge_new_columns else inferred
    return SchemaMerge(columns, added, tuple(conflicts), columns != tuple(existing))


# --- the S3 / Glue shell --------------------------------------------------------------------------


@dataclass(frozen=True)
class CrawledObject:
    """A data object of the table: its key, size and partition values."""

    key: str
    size: int
    partition: tuple[str, ...]


@dataclass(frozen=True)
class CrawlResult:
    database: str
    table: str
    location: str
    classification: str = ""
    table_created: bool = False
    table_updated: bool = False
    columns: Columns = ()
    columns_added: tuple[str, ...] = ()
    conflicts: tuple[TypeConflict, ...] = ()
    partitions_added: tuple[tuple[str, ...], ...] = ()
    partitions_total: int = 0
    objects_read: int = 0
    ignored_keys: tuple[str, ...] = ()
    skipped_keys: tuple[str, ...] = ()  # in the layout, but no classifier recognises them (UNKNOWN)
    stale_partitions: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One sentence for the terminal (the crawl has already warned about conflicts and stale partitions)."""
        table = "created" if self.table_created else "updated" if self.table_updated else "unchanged"
        added = f", {len(self.columns_added)} column(s) added" if self.columns_added else ""
        return (f"crawled {self.database}.{self.table}: table {table}{added}; {self.partitions_total:,} "
                f"partition(s), {len(self.partitions_added):,} new; {self.objects_read:,} object(s) read")


class _S3RangeFile(io.RawIOBase):
    """A read-only, seekable view of one S3 object through ranged GETs (Parquet footers only)."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        self._s3, self._bucket, self._key, self._size, self._pos = s3, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        end = min(self._size, self._pos + len(buffer)) - 1
        data = _get_range(self._s3, self._bucket, self._key, self._pos, end)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


@retrying()
def _get_range(s3: Any, bucket: str, key: str, start: int, end: int) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read()


def _json_records(stream: Any, compressed: bool, limit: int) -> Iterator[dict[str, Any]]:
    source = gzip.GzipFile(fileobj=stream) if compressed else stream
    for count, line in enumerate(io.TextIOWrapper(source, encoding="utf-8")):
        if count >= limit:
            return
        if line.strip():
            yield json.loads(line)


def read_object_schema(s3: Any, bucket: str, obj: CrawledObject, fmt: str, compressed: bool) -> Columns:
    """The columns one object carries: the Parquet footer, or a sample of its JSON records."""
    try:
        if fmt == "parquet":
            return parquet_columns(pq.read_schema(_S3RangeFile(s3, bucket, obj.key, obj.size)))
        body = s3.get_object(Bucket=bucket, Key=obj.key)["Body"]
        try:
            return infer_json_columns(_json_records(body, compressed, JSON_SAMPLE_RECORDS))
        finally:
            body.close()
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TerminalError(
            f"s3://{bucket}/{obj.key} is not readable {fmt} ({str(exc).splitlines()[0]}); "
            "move it out of the lake prefix"
        ) from None


def list_lake(s3: Any, spec: CrawlerSpec) -> tuple[list[CrawledObject], list[str]]:
    """Data objects under the include path in the Hive layout, and the keys that are not
    (hidden `_*` / `.*` names, folder markers and empty objects are skipped silently)."""
    objects, ignored = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=spec.bucket, Prefix=spec.prefix):
        for item in page.get("Contents", []):
            key, size = item["Key"], int(item.get("Size", 0))
            values = partition_values(key, spec.prefix)
            hidden = key.endswith("/") or key.rsplit("/", 1)[-1].startswith(("_", "."))
            if values is None and not hidden:
                ignored.append(key)
            if values is None or size == 0:
                continue
            objects.append(CrawledObject(key, size, values))
    return sorted(objects, key=lambda o: o.key), ignored


def _object_format(s3: Any, bucket: str, obj: CrawledObject) -> tuple[str, bool] | None:
    """(format, gzip) by the object's name, else by its first bytes; None: no classifier recognises it."""
    found = format_of(obj.key)
    if found is None:
        found = format_of(obj.key, _get_range(s3, bucket, obj.key, 0, min(obj.size, 16) - 1))
    return found


def _readable_schema(s3: Any, bucket: str, obj: CrawledObject, fmt: str, compressed: bool) -> Columns | None:
    try:
        return read_object_schema(s3, bucket, obj, fmt, compressed)
    except TerminalError:  # read_object_schema's "not readable": skipped as UNKNOWN, named in the warning
        return None


def _existing_partitions(glue: Any, spec: CrawlerSpec) -> set[tuple[str, ...]]:
    # No Expression: MiniStack ignores it, so every partition is listed and compared here.
    found = set()
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=spec.database, TableName=spec.table):
        found.update(tuple(p["Values"]) for p in page.get("Partitions", []))
    return found


def _ensure_database(glue: Any, database: str) -> None:
    try:
        glue.get_database(Name=database)
    except Exception as exc:
        if error_code(exc) != "EntityNotFoundException":
            raise
        try:
            glue.create_database(DatabaseInput={"Name": database})
        except Exception as create_exc:
            if error_code(create_exc) != "AlreadyExistsException":
                raise


def _get_table(glue: Any, spec: CrawlerSpec) -> dict[str, Any] | None:
    try:
        return glue.get_table(DatabaseName=spec.database, Name=spec.table)["Table"]
    except Exception as exc:
        if error_code(exc) == "EntityNotFoundException":
            return None
        raise


def _table_format(table: Mapping[str, Any]) -> str:
    params = table.get("Parameters") or {}
    if params.get("classification") in STORAGE:
        return str(params["classification"])
    serde = ((table.get("StorageDescriptor") or {}).get("SerdeInfo") or {}).get("SerializationLibrary", "")
    return "parquet" if "parquet" in serde.lower() else "json"


def _create_partitions(glue: Any, spec: CrawlerSpec, inputs: list[dict[str, Any]]) -> None:
    for start in range(0, len(inputs), PARTITION_BATCH):
        batch = inputs[start : start + PARTITION_BATCH]
        response = glue.batch_create_partition(
            DatabaseName=spec.database, TableName=spec.table, PartitionInputList=batch
        )
        failures = [e for e in response.get("Errors", [])
                    if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]
        if failures:
            detail = failures[0].get("ErrorDetail", {})
            raise TerminalError(
                f"Glue refused partition {failures[0].get('PartitionValues')}: "
                f"{detail.get('ErrorCode')}: {detail.get('ErrorMessage')}"
            )


def crawl(clients: Clients, settings: Settings, console: Console | None = None,
          spec: CrawlerSpec | None = None, workers: int = 8) -> CrawlResult:
    """One crawler run: list, infer, create/update the table, add new partitions; report what changed."""
    console = console or Console(quiet=True)
    spec = spec or load_crawler_spec(clients, settings)
    s3, glue = clients.s3, clients.glue
    if not spec.s3_path:  # a catalog target crawls its table's own location
        target = _get_table(glue, spec)
        if target is None:
            raise TerminalError(f"the crawler targets table {spec.database}.{spec.table}, which does not exist; "
                                "create it first (make apply)")
        location = str(target.get("StorageDescriptor", {}).get("Location", ""))
        spec = replace(spec, s3_path=location if location.endswith("/") else location + "/")
    console.step(f"crawling {spec.s3_path} into {spec.database}.{spec.table}")
    _ensure_database(glue, spec.database)
    objects, ignored = list_lake(s3, spec)
    result = CrawlResult(spec.database, spec.table, spec.s3_path, ignored_keys=tuple(ignored))
    if ignored:
        console.warn(f"{len(ignored)} object(s) outside the year=/month=/day= layout are not part of the table")
    if not objects:
        console.warn(f"no data objects under {spec.s3_path}; nothing to crawl")
        return result

    # An object no classifier recognises (a note, a truncated upload) is UNKNOWN to AWS's crawler, which goes
    # on (https://docs.aws.amazon.com/glue/latest/dg/add-classifier.html): skipped here, named in a warning.
    formats = {obj.key: found for obj in objects if (found := _object_format(s3, spec.bucket, obj)) is not None}
    skipped = [obj.key for obj in objects if obj.key not in formats]
    objects = [obj for obj in objects if obj.key in formats]
    if not objects:
        _warn_skipped(console, spec, skipped)
        console.warn(f"no data objects under {spec.s3_path}; nothing to crawl")
        return replace(result, skipped_keys=tuple(skipped))
    kinds = set(formats.values())
    if len({fmt for fmt, _ in kinds}) > 1:
        raise TerminalError(f"{spec.s3_path} mixes Parquet and JSON objects; keep one OUTPUT_FORMAT per lake")
    fmt = next(iter(kinds))[0]
    compressed = any(c for _, c in kinds)

    table = _get_table(glue, spec)
    existing_partitions = _existing_partitions(glue, spec) if table else set()
    found_partitions = sorted({obj.partition for obj in objects})
    new_partitions = [p for p in found_partitions if p not in existing_partitions]
    incremental = spec.recrawl == "CRAWL_NEW_FOLDERS_ONLY" and table is not None
    to_read = [o for o in objects if o.partition in set(new_partitions)] if incremental else objects

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        read = list(pool.map(lambda o: (o.key, _readable_schema(s3, spec.bucket, o, *formats[o.key])), to_read))
    unreadable = {key for key, columns in read if columns is None}
    if unreadable:  # a partition whose every object was skipped is not one
        skipped += sorted(unreadable)
        objects = [o for o in objects if o.key not in unreadable]
        to_read = [o for o in to_read if o.key not in unreadable]
        found_partitions = sorted({obj.partition for obj in objects})
        new_partitions = [p for p in found_partitions if p not in existing_partitions]
    _warn_skipped(console, spec, skipped)
    schemas = [(key, columns) for key, columns in read if columns is not None]
    if not objects:
        console.warn(f"no data objects under {spec.s3_path}; nothing to crawl")
        return replace(result, skipped_keys=tuple(sorted(skipped)))
    inferred, object_conflicts = merge_object_schemas(schemas)
    if table is not None and not to_read:  # incremental run without new folders: nothing inferred
        inferred = tuple((c["Name"].lower(), c["Type"].lower()) for c in table["StorageDescriptor"]["Columns"])
    partition_cols = [n for n, _ in inferred if n in PARTITION_KEYS]
    inferred = tuple((n, t) for n, t in inferred if n not in PARTITION_KEYS)
    notes = [f"objects carry partition column(s) {', '.join(partition_cols)}: the folder values win"] \
        if partition_cols else []

    existing_columns: Columns | None = None
    if table is not None:
        table_fmt = _table_format(table)
        if table_fmt != fmt:
            raise TerminalError(
                f"table {spec.database}.{spec.table} is {table_fmt} but the lake holds {fmt} objects; "
                "delete the table (or the lake) and crawl again"
            )
        existing_columns = tuple((c["Name"].lower(), c["Type"].lower())
                                 for c in table.get("StorageDescriptor", {}).get("Columns", []))
    merge = merge_with_table(existing_columns, inferred, spec.merge_new_columns, object_conflicts)
    apply_schema = table is None or (spec.update_behavior == "UPDATE_IN_DATABASE" and not incremental)
    columns = merge.columns if apply_schema else (existing_columns or ())

    created = updated = False
    extra = crawler_parameters(spec.crawler_name, len(objects), sum(o.size for o in objects))

    def table_request(parameters: Mapping[str, str]) -> dict[str, Any]:
        return table_input(spec.table, spec.s3_path, fmt, extra_parameters=parameters, columns=columns,
                           compressed=compressed)

    if table is None:
        glue.create_table(DatabaseName=spec.database, TableInput=table_request(extra))
        created = True
        console.ok(f"created table {spec.database}.{spec.table} ({fmt}, {len(columns)} columns)")
    elif apply_schema and merge.changed:
        kept = {**(table.get("Parameters") or {}), **extra}  # parameters someone else set survive
        glue.update_table(DatabaseName=spec.database, TableInput=table_request(kept))
        updated = True
        console.ok(f"updated table {spec.table}: new column(s) {', '.join(merge.added) or 'none'}")
    elif merge.changed:
        notes.append(f"schema changes logged, not applied (UpdateBehavior=LOG): new column(s) {', '.join(merge.added)}")
        console.warn(notes[-1])
    types_applied = updated and not spec.merge_new_columns
    for conflict in merge.conflicts:
        console.warn(f"type change {'applied' if types_applied else 'not applied'}: {conflict.describe()}")

    inputs = [partition_input(spec.s3_path, values, fmt, columns, compressed) for values in new_partitions]
    _create_partitions(glue, spec, inputs)
    if new_partitions:
        console.ok(f"added {len(new_partitions)} partition(s); {len(found_partitions)} in the lake")
    stale = tuple(sorted(existing_partitions - set(found_partitions)))
    if stale:
        console.warn(f"{len(stale)} catalog partition(s) have no objects left (DeleteBehavior LOG: kept)")
    return replace(
        result,
        classification=fmt,
        table_created=created,
        table_updated=updated,
        columns=columns,
        columns_added=merge.added if (created or updated) else (),
        conflicts=merge.conflicts,
        partitions_added=tuple(new_partitions),
        partitions_total=len(existing_partitions | set(found_partitions)),
        objects_read=len(to_read),
        skipped_keys=tuple(sorted(skipped)),
        stale_partitions=stale,
        notes=tuple(notes),
    )


def _warn_skipped(console: Console, spec: CrawlerSpec, skipped: list[str]) -> None:
    if skipped:
        console.warn(f"{len(skipped)} object(s) skipped: neither readable Parquet nor JSON lines (AWS's crawler "
                     f"classifies them UNKNOWN), e.g. s3://{spec.bucket}/{sorted(skipped)[0]}; move them out of "
                     f"{spec.s3_path}")
