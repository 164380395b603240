"""The one query core: a user's Athena SQL (Trino dialect) run by the local mirror, or one line saying why not.

`make query`, `make sql`, `ENGINE=athena` and every Athena client (through the project's Athena
endpoint, analytics/athena_api) end here, so a query gives the same rows, the same column types and
the same error wherever it is sent from:

1. Parse the text as Athena SQL with the KPIs' sqlglot path (analytics/dialect.py). A syntax error
   names its line and column, and says whether Athena would reject it too (parsed again with
   sqlglot's `trino` dialect).
2. Only queries run (SELECT, WITH, VALUES, set operations). Any other statement (UNLOAD, INSERT,
   CREATE VIEW, SHOW, EXPLAIN, ...) is named, with "Athena accepts it" where it does.
3. Every function call is checked before DuckDB sees it: one sqlglot cannot write for DuckDB, or
   that reaches DuckDB under a name DuckDB does not have, fails as
   `word_stem at line 2, column 3: Athena accepts it; the local mirror cannot run word_stem`;
   a name that is not a Trino function at all says Athena would reject it too.
4. Tables come from the Glue catalog as Athena's do: the project's views (sales_orders_cdc,
   sales_orders_current, sales_daily) and the table an Engine opened are there already; any other
   table the query names (`db.t`, or `t` in the query's database) is looked up in Glue and read
   with the same Arrow dataset as the lake (Parquet and JSON tables).
5. The text that runs is `dialect.to_duckdb` of the query, exactly as the KPIs are run.

Results are Athena-shaped: column names lower-cased, an unnamed expression named `_col<N>` (as
Trino names it), and each column typed with its Trino type name (`varchar`, `bigint`,
`decimal(12,2)`, `timestamp`, `array(varchar)`, ...). `athena_text` renders a value as Athena's
GetQueryResults and result CSV do; `format_result` renders a result for the CLI (table, csv, json).

Reference: https://docs.aws.amazon.com/athena/latest/ug/functions-env3.html (Trino functions),
https://trino.io/docs/current/functions/list.html (the function names below).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError
from sqlglot.optimizer.scope import traverse_scope

from analytics.catalog import TableInfo, quote_identifier, table_info_from_glue
from analytics.dialect import SOURCE_DIALECT, to_duckdb
from analytics.engine import Engine, lake_dataset, open_engine, s3_filesystem
from analytics.views import VIEW_NAMES
from common.aws import Clients, error_code
from common.config import Settings
from common.console import Console
from common.errors import TerminalError

RESULT_FORMATS = ("table", "csv", "json")  # how a query's result is printed (FORMAT=, --format)
ATHENA_CATALOG = "awsdatacatalog"

# Trino's functions (https://trino.io/docs/current/functions/list.html), the ones Athena engine
# version 3 inherits. Only used to say whether Athena would accept a call the mirror cannot run.
_TRINO_FUNCTION_NAMES = """
abs acos all_match any_match any_value approx_distinct approx_most_frequent approx_percentile approx_set
arbitrary array_agg array_distinct array_except array_first array_histogram array_intersect array_join
array_last array_max array_min array_position array_remove array_sort array_union arrays_overlap asin
at_timezone atan atan2 avg bar beta_cdf bing_tile bing_tile_at bing_tile_coordinates bing_tile_polygon
bing_tile_quadkey bing_tile_zoom_level bing_tiles_around bit_count bitwise_and bitwise_and_agg
bitwise_left_shift bitwise_not bitwise_or bitwise_or_agg bitwise_right_shift bitwise_right_shift_arithmetic
bitwise_xor bool_and bool_or cardinality cast cbrt ceil ceiling char2hexint checksum chr classify coalesce
codepoint collect color combinations concat concat_ws contains contains_sequence convex_hull_agg corr cos
cosh cosine_distance cosine_similarity count count_if covar_pop covar_samp crc32 cume_dist current_date
current_groups current_time current_timestamp current_timezone current_user date date_add date_diff
date_format date_parse date_trunc day day_of_month day_of_week day_of_year degrees dense_rank dow doy e
element_at empty_approx_set ends_with every exclude_columns extract exp features filter first_value
flatten floor format format_datetime format_number from_base from_base32 from_base64 from_base64url
from_big_endian_32 from_big_endian_64 from_encoded_polyline from_geojson_geometry from_hex
from_ieee754_32 from_ieee754_64 from_iso8601_date from_iso8601_timestamp from_iso8601_timestamp_nanos
from_unixtime from_unixtime_nanos from_utf8 geometric_mean geometry_from_hadoop_shape
geometry_invalid_reason geometry_nearest_points geometry_to_bing_tiles geometry_union geometry_union_agg
great_circle_distance greatest hamming_distance hash_counts histogram hmac_md5 hmac_sha1 hmac_sha256
hmac_sha512 hour human_readable_seconds if infinity intersection_cardinality inverse_beta_cdf
inverse_normal_cdf is_finite is_infinite is_json_scalar is_nan jaccard_index json_array_contains
json_array_get json_array_length json_exists json_extract json_extract_scalar json_format json_parse
json_query json_size json_value kurtosis lag last_day_of_month last_value lead learn_classifier
learn_libsvm_classifier learn_libsvm_regressor learn_regressor least length levenshtein_distance
line_interpolate_point line_interpolate_points line_locate_point listagg ln localtime localtimestamp log
log10 log2 lower lpad ltrim luhn_check make_set_digest map map_agg map_concat map_entries map_filter
map_from_entries map_keys map_union map_values map_zip_with max max_by md5 merge merge_set_digest
millisecond min min_by minute mod month multimap_agg multimap_from_entries murmur3 nan ngrams none_match
normal_cdf normalize now nth_value ntile nullif numeric_histogram objectid_timestamp parse_datetime
parse_duration parse_data_size percent_rank pi position pow power qdigest_agg quarter radians rand random
rank reduce reduce_agg regexp_count regexp_extract regexp_extract_all regexp_like regexp_position
regexp_replace regexp_split regress regr_intercept regr_slope render repeat replace reverse rgb round
row_number rpad rtrim second sequence sha1 sha256 sha512 shuffle sign simplify_geometry sin sinh skewness
slice soundex spatial_partitioning spatial_partitions split split_part split_to_map split_to_multimap
spooky_hash_v2_32 spooky_hash_v2_64 sqrt st_area st_asbinary st_astext st_boundary st_buffer st_centroid
st_contains st_convexhull st_coorddim st_crosses st_difference st_dimension st_disjoint st_distance
st_endpoint st_envelope st_envelopeaspts st_equals st_exteriorring st_geometries st_geometryfromtext
st_geometryn st_geometrytype st_geomfrombinary st_interiorringn st_interiorrings st_intersection
st_intersects st_isclosed st_isempty st_isring st_issimple st_isvalid st_length st_linefromtext
st_linestring st_multipoint st_numgeometries st_numinteriorring st_numpoints st_overlaps st_point
st_pointn st_points st_polygon st_relate st_startpoint st_symdifference st_touches st_union st_within st_x
st_xmax st_xmin st_y st_ymax st_ymin starts_with stddev stddev_pop stddev_samp strpos substr substring sum
tan tanh tdigest_agg timestamp_objectid timezone_hour timezone_minute to_base to_base32 to_base64
to_base64url to_big_endian_32 to_big_endian_64 to_char to_date to_encoded_polyline to_geojson_geometry
to_geometry to_hex to_ieee754_32 to_ieee754_64 to_iso8601 to_milliseconds to_spherical_geography
to_timestamp to_unixtime to_utf8 transform transform_keys transform_values translate trim trim_array
truncate try try_cast typeof upper url_decode url_encode url_extract_fragment url_extract_host
url_extract_parameter url_extract_path url_extract_port url_extract_protocol url_extract_query uuid
value_at_quantile values_at_quantiles var_pop var_samp variance version week week_of_year width_bucket
wilson_interval_lower wilson_interval_upper with_timezone word_stem xxhash64 year year_of_week yow zip
zip_with
"""
TRINO_FUNCTIONS = frozenset(_TRINO_FUNCTION_NAMES.split())

# Statements Athena runs besides queries: named when the mirror is asked to run one.
ATHENA_STATEMENTS = {
    exp.Insert: "INSERT INTO", exp.Delete: "DELETE", exp.Update: "UPDATE", exp.Merge: "MERGE INTO",
    exp.Drop: "DROP", exp.Alter: "ALTER", exp.Describe: "DESCRIBE",
}
ATHENA_COMMANDS = ("UNLOAD", "SHOW", "EXPLAIN", "MSCK REPAIR", "ALTER", "PREPARE", "EXECUTE", "DEALLOCATE",
                   "DESCRIBE", "OPTIMIZE", "VACUUM", "USE")
# DuckDB names that are syntax, not catalog functions (a call rendered with one of these heads is fine).
_DUCKDB_SYNTAX = frozenset({"cast", "try_cast", "coalesce", "case", "extract", "interval", "exists", "not",
                            "row", "struct_pack", "columns", "unnest", "lambda", "if", "nullif"})
_HEAD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_DUCKDB_ARGS = re.compile(r"(?:given name and argument types '|for the function call \")([A-Za-z_][A-Za-z0-9_]*)\(")
_DUCKDB_FN = re.compile(r"(?:Scalar|Aggregate|Table) Function with name \"?([A-Za-z_][A-Za-z0-9_]*)\"? does not exist",
                        re.IGNORECASE)
_duckdb_names: frozenset[str] | None = None


# --- results and errors --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    """Column names, their Athena/Trino type names, and the rows as Python values (None for NULL)."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    truncated: bool = False  # more rows than `max_rows` asked for


class QueryError(TerminalError):
    """One line naming what the mirror cannot run, where it is, and whether Athena would accept it.

    `code` is Athena's error name for the same failure (SYNTAX_ERROR, FUNCTION_NOT_FOUND, NOT_SUPPORTED,
    TABLE_NOT_FOUND, GENERIC_USER_ERROR); `athena_accepts` is True, False, or None when unknown.
    """

    def __init__(self, message: str, *, code: str = "GENERIC_USER_ERROR", construct: str | None = None,
                 line: int | None = None, column: int | None = None, athena_accepts: bool | None = None) -> None:
        super().__init__(message)
        self.code, self.construct, self.line, self.column = code, construct, line, column
        self.athena_accepts = athena_accepts


def _where(line: int | None, column: int | None) -> str:
    return f" at line {line}, column {column}" if line is not None else ""


# --- tables the query names ---------------------------------------------------------------------


class Catalog(Protocol):
    """Where tables the query names come from (GlueCatalog; a dict-backed fake in tests)."""

    def table(self, database: str, name: str) -> TableInfo | None: ...

    def dataset(self, table: TableInfo) -> ds.Dataset: ...


class GlueCatalog:
    """Glue tables by name, read with the lake's Arrow dataset over the target's S3."""

    def __init__(self, clients: Clients, settings: Settings, filesystem: pafs.FileSystem | None = None) -> None:
        self.clients, self.settings = clients, settings
        self._filesystem = filesystem

    def table(self, database: str, name: str) -> TableInfo | None:
        try:
            found = self.clients.glue.get_table(DatabaseName=database, Name=name)["Table"]
        except Exception as exc:
            if error_code(exc) == "EntityNotFoundException":
                return None
            raise
        params = {k.lower(): str(v).lower() for k, v in (found.get("Parameters") or {}).items()}
        if params.get("table_type") == "iceberg":
            raise QueryError(f"table {database}.{name} is an Iceberg table: Athena accepts it; the local mirror "
                             "reads Hive tables of Parquet or JSON objects only", code="NOT_SUPPORTED",
                             construct=f"{database}.{name}", athena_accepts=True)
        if found.get("TableType") == "VIRTUAL_VIEW":
            raise QueryError(f"{database}.{name} is an Athena view: Athena accepts it; the local mirror does not "
                             "read views stored in Glue", code="NOT_SUPPORTED", construct=f"{database}.{name}",
                             athena_accepts=True)
        try:
            return table_info_from_glue(found)
        except TerminalError as exc:
            raise QueryError(f"{exc}: Athena accepts it; the local mirror reads Parquet and JSON tables only",
                             code="NOT_SUPPORTED", construct=f"{database}.{name}", athena_accepts=True) from None

    def dataset(self, table: TableInfo) -> ds.Dataset:
        if self._filesystem is None:
            self._filesystem = s3_filesystem(self.settings)
        return lake_dataset(table, self._filesystem, f"{table.bucket}/{table.prefix}")


def attach_table(conn: duckdb.DuckDBPyConnection, table: TableInfo, dataset: ds.Dataset) -> None:
    """Register a Glue table in DuckDB as "<database>"."<table>", the name Athena gives it."""
    relation = f"__glue__{table.database}__{table.name}"
    conn.register(relation, dataset)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.database)}")
    conn.execute(f"CREATE OR REPLACE VIEW {table.qualified_name} AS SELECT * FROM {quote_identifier(relation)}")


def _relation_exists(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? "
        "UNION ALL SELECT 1 FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
        [schema, name, schema, name],
    ).fetchall()
    return bool(found)


# --- parsing and checks (pure, no connection) ---------------------------------------------------


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to a Command; the caller reports it instead."""
    logger = logging.getLogger("sqlglot")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def line_column(sql: str, offset: int) -> tuple[int, int]:
    """Pure: 1-based line and column of a character offset."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    return line, offset - (sql.rfind("\n", 0, offset) + 1) + 1


def _athena_command(sql: str) -> bool:
    """Is it one of Athena's statements that sqlglot keeps as a Command (UNLOAD, SHOW, EXPLAIN, MSCK ...)?"""
    try:
        with _quiet_sqlglot():
            parsed = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    except (ParseError, sqlglot.errors.TokenError):
        return False
    return (len(parsed) == 1 and isinstance(parsed[0], exp.Command)
            and str(parsed[0].this).upper().startswith(ATHENA_COMMANDS))


def athena_accepts_syntax(sql: str) -> bool:
    """Does sqlglot's Trino dialect parse it (Athena engine 3 is Trino), or is it an Athena-only statement?"""
    try:
        with _quiet_sqlglot():
            parsed = [s for s in sqlglot.parse(sql, read="trino") if s is not None]
    except (ParseError, sqlglot.errors.TokenError):
        return _athena_command(sql)
    if len(parsed) != 1:
        return False
    if isinstance(parsed[0], exp.Command):
        return _athena_command(sql)
    return is_statement(parsed[0])


def is_statement(node: exp.Expression) -> bool:
    """A whole statement (a query, DDL, DML), not a bare expression such as `foo bar`."""
    return isinstance(node, (exp.Query, exp.Values, exp.Create, exp.Command, *ATHENA_STATEMENTS))


def parse_statement(sql: str) -> exp.Expression:
    """One Athena statement; a syntax error names its position and whether Athena would reject it."""
    if not sql.strip():
        raise QueryError("the query is empty; write one SQL statement", code="SYNTAX_ERROR", athena_accepts=False)
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line, column = first.get("line"), first.get("col")
        description = str(first.get("description") or exc).splitlines()[0]
        token = first.get("highlight")
        near = f" near {token!r}" if token else ""
        verdict = "Athena accepts it" if athena_accepts_syntax(sql) else "Athena would reject it too"
        raise QueryError(f"syntax error{_where(line, column)}{near}: {description}; {verdict}",
                         code="SYNTAX_ERROR", line=line, column=column,
                         athena_accepts=verdict == "Athena accepts it") from None
    except sqlglot.errors.TokenError as exc:
        raise QueryError(f"syntax error: {str(exc).splitlines()[0]}; Athena would reject it too",
                         code="SYNTAX_ERROR", athena_accepts=False) from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, found {len(statements)}; send them one at a time",
                         code="SYNTAX_ERROR", athena_accepts=False)
    if not is_statement(statements[0]):
        raise QueryError("syntax error at line 1, column 1: not a SQL statement; Athena would reject it too",
                         code="SYNTAX_ERROR", line=1, column=1, athena_accepts=False)
    return statements[0]


def statement_kind(statement: exp.Expression) -> str:
    """Pure: a name for a statement (`SELECT`, `CREATE TABLE AS`, `UNLOAD`, ...)."""
    if isinstance(statement, exp.Query | exp.Values):
        return "SELECT"
    if isinstance(statement, exp.Create):
        kind = str(statement.args.get("kind") or "").upper()
        return f"CREATE {kind} AS" if kind == "TABLE" and statement.expression is not None else f"CREATE {kind}"
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    for kind, name in ATHENA_STATEMENTS.items():
        if isinstance(statement, kind):
            return name
    return type(statement).__name__.upper()


def require_query(statement: exp.Expression, sql: str) -> exp.Expression:
    """The statement if it is a query; else one line naming it (the mirror runs queries only)."""
    if isinstance(statement, exp.Query | exp.Values):
        return statement
    kind = statement_kind(statement)
    accepts = athena_accepts_syntax(sql)
    verdict = "Athena accepts it" if accepts else "Athena would reject it too"
    raise QueryError(f"{kind} at line 1, column 1: {verdict}; the local mirror runs queries only "
                     "(SELECT, WITH, VALUES)", code="NOT_SUPPORTED", construct=kind, line=1, column=1,
                     athena_accepts=accepts)


def _function_name(node: exp.Func) -> str:
    """The name the user wrote (sqlglot's typed nodes render it back in Athena's dialect)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    match = _HEAD.match(node.sql(dialect=SOURCE_DIALECT))
    return match.group(1).lower() if match else node.sql_name().lower()


def node_position(node: exp.Expression, sql: str) -> tuple[int | None, int | None]:
    """Pure: where a node starts in the text, from sqlglot's token positions (1-based line, column)."""
    start = node.meta.get("start") if isinstance(node, exp.Anonymous) else None
    if start is None:
        starts = [n.meta["start"] for n in node.walk() if n is not node and "start" in n.meta]
        if isinstance(node, exp.Column) and "start" in node.this.meta:
            starts.append(node.this.meta["start"])
        anchor = min(starts) if starts else len(sql)
        if isinstance(node, exp.Func):
            name = _function_name(node)
            found = [m.start() for m in re.finditer(rf"(?i)\b{re.escape(name)}\s*\(", sql) if m.start() <= anchor]
            if found:
                start = found[-1]
            else:
                first = re.search(rf"(?i)\b{re.escape(name)}\s*\(", sql)
                start = first.start() if first else (min(starts) if starts else None)
        else:
            start = min(starts) if starts else None
    if start is None:
        return None, None
    return line_column(sql, start)


def duckdb_function_names() -> frozenset[str]:
    """Every function DuckDB knows (this DuckDB version), lower-cased; read once per process."""
    global _duckdb_names
    if _duckdb_names is None:
        with duckdb.connect(":memory:") as conn:
            rows = conn.execute("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()
        _duckdb_names = frozenset(str(r[0]).lower() for r in rows)
    return _duckdb_names


def _cannot_run(name: str, sql: str, node: exp.Expression, why: str = "") -> QueryError:
    line, column = node_position(node, sql)
    if name.lower() in TRINO_FUNCTIONS:
        reason = f" ({why})" if why else ""
        return QueryError(f"{name}{_where(line, column)}: Athena accepts it; the local mirror cannot run "
                          f"{name}{reason}", code="NOT_SUPPORTED", construct=name, line=line, column=column,
                          athena_accepts=True)
    return QueryError(f"{name}{_where(line, column)}: Athena would reject it too: Trino has no function {name}",
                      code="FUNCTION_NOT_FOUND", construct=name, line=line, column=column, athena_accepts=False)


def check_functions(query: exp.Expression, sql: str) -> None:
    """Fail on the first call the mirror cannot run: sqlglot cannot write it for DuckDB, or DuckDB lacks it."""
    known = duckdb_function_names()
    for node in query.find_all(exp.Func):
        if isinstance(node, exp.Anonymous):
            name = str(node.name)
            lower = name.lower()
            if lower not in TRINO_FUNCTIONS or (lower not in known and lower not in _DUCKDB_SYNTAX):
                raise _cannot_run(name, sql, node)  # not Trino: Athena rejects it, even where DuckDB has it
            continue
        try:
            rendered = node.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as exc:
            raise _cannot_run(_function_name(node), sql, node, str(exc).splitlines()[0]) from None
        head = _HEAD.match(rendered)
        if head and not isinstance(node, exp.Cast | exp.Case) and head.group(1).lower() not in known | _DUCKDB_SYNTAX:
            raise _cannot_run(_function_name(node), sql, node, f"DuckDB has no {head.group(1).lower()}")


# --- the query as it runs ------------------------------------------------------------------------


def _outer_select(query: exp.Expression) -> exp.Select | None:
    node = query
    while isinstance(node, exp.SetOperation):
        node = node.this
    if isinstance(node, exp.Subquery):
        node = node.this
    return node if isinstance(node, exp.Select) else None


def name_unnamed_columns(query: exp.Expression) -> exp.Expression:
    """Trino names an unaliased expression `_col<N>` (its position): do the same, so columns match Athena's."""
    select = _outer_select(query)
    if select is None or any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star)
                             for p in select.expressions):
        return query
    named = []
    for index, projection in enumerate(select.expressions):
        if isinstance(projection, exp.Alias | exp.Column):
            named.append(projection)
        else:
            named.append(exp.alias_(projection, f"_col{index}", quoted=False))
    select.set("expressions", named)
    return query


def strip_catalog(query: exp.Expression) -> exp.Expression:
    """`awsdatacatalog.db.t` is `db.t`: the mirror has one catalog, Glue's."""
    for table in query.find_all(exp.Table):
        if table.catalog and table.catalog.lower() == ATHENA_CATALOG:
            table.set("catalog", None)
    return query


def _cte_names(query: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}


def attach_tables(conn: duckdb.DuckDBPyConnection, query: exp.Expression, sql: str, database: str | None,
                  catalog: Catalog | None) -> None:
    """Every table the query names is in DuckDB afterwards, or the query fails naming the one that is not."""
    ctes = _cte_names(query)
    views = set(VIEW_NAMES)
    for table in query.find_all(exp.Table):
        name = table.name
        if not name or isinstance(table.this, exp.Func):  # UNNEST(...), a table function
            continue
        if table.catalog and table.catalog.lower() != ATHENA_CATALOG:
            line, column = node_position(table, sql)
            raise QueryError(f"catalog {table.catalog}{_where(line, column)}: a federated catalog; Athena accepts it, "
                             f"the local mirror reads the Glue catalog ({ATHENA_CATALOG}) only",
                             code="NOT_SUPPORTED", construct=table.catalog, line=line, column=column,
                             athena_accepts=True)
        if not table.db and (name.lower() in ctes or name.lower() in views or _relation_exists(conn, "main", name)):
            continue
        schema = table.db or database
        if schema is None:
            line, column = node_position(table, sql)
            raise QueryError(f"table {name}{_where(line, column)} does not exist: name its database (db.{name}) "
                             "or run the query in one", code="TABLE_NOT_FOUND", construct=name, line=line,
                             column=column, athena_accepts=False)
        if _relation_exists(conn, schema, name):
            continue
        found = catalog.table(schema, name) if catalog is not None else None
        if found is None:
            line, column = node_position(table, sql)
            raise QueryError(f"table {schema}.{name}{_where(line, column)} does not exist in the Glue catalog; "
                             "Athena would reject it too", code="TABLE_NOT_FOUND", construct=f"{schema}.{name}",
                             line=line, column=column, athena_accepts=False)
        assert catalog is not None
        attach_table(conn, found, catalog.dataset(found))


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between)


def _number_type(node: exp.Expression) -> str | None:
    """Trino's type of a number literal (`2026` integer, `1.5` decimal, `1e3` double); None: not one."""
    literal = node.this if isinstance(node, exp.Neg) else node
    if not (isinstance(literal, exp.Literal) and literal.is_number):
        return None
    text = literal.name.lower()
    return "double" if "e" in text else "decimal" if "." in text else "integer"


def _compared_numbers(column: exp.Column) -> str | None:
    """The type of the number literal `column` is compared with (=, <>, <, IN, BETWEEN ...), if any."""
    parent = column.parent
    if not isinstance(parent, _COMPARISONS):
        return None
    if isinstance(parent, exp.In):
        others = parent.expressions if parent.this is column else []
    elif isinstance(parent, exp.Between):
        others = [parent.args.get("low"), parent.args.get("high")] if parent.this is column else []
    else:
        others = [parent.expression if parent.this is column else parent.this]
    types = [_number_type(o) for o in others if o is not None]
    return types[0] if types and all(types) else None


def _column_types(conn: duckdb.DuckDBPyConnection, table: exp.Table) -> dict[str, str]:
    """A table's or view's columns and their DuckDB types, as the query sees them ({} if DuckDB cannot say)."""
    relation = ".".join(quote_identifier(part) for part in (table.db, table.name) if part)
    try:
        return {str(row[0]).lower(): str(row[1]).upper() for row in conn.sql(f"DESCRIBE {relation}").fetchall()}
    except duckdb.Error:
        return {}


def check_comparisons(conn: duckdb.DuckDBPyConnection, query: exp.Expression, sql: str) -> None:
    """Trino never compares a string with a number: `WHERE year = 2026` on the lake's string partition keys
    fails on Athena (`Cannot apply operator: varchar = integer`), where DuckDB casts one side and answers
    (and `month = 1` would even match '01'). A column of a table or view compared with a number literal is
    checked here; one the query defines itself (a CTE, a subquery) is left to DuckDB.
    https://trino.io/docs/current/functions/conversion.html (no implicit string-number conversion)."""
    try:
        scopes = traverse_scope(query)
    except Exception:  # sqlglot cannot scope this query: DuckDB answers as it will
        return
    types: dict[str, dict[str, str]] = {}
    for scope in scopes:
        for column in scope.columns:
            number = _compared_numbers(column)
            if number is None:
                continue
            if column.table:
                source = scope.sources.get(column.table)
            else:
                source = next(iter(scope.sources.values())) if len(scope.sources) == 1 else None
            if not isinstance(source, exp.Table):
                continue
            relation = source.sql()
            if relation not in types:
                types[relation] = _column_types(conn, source)
            kind = types[relation].get(column.name.lower(), "")
            if kind.startswith("VARCHAR"):
                line, col = node_position(column, sql)
                raise QueryError(f"{column.sql(dialect=SOURCE_DIALECT)}{_where(line, col)} is a string compared "
                                 f"with a number: Athena would reject it too (Cannot apply operator: varchar = "
                                 f"{number}); compare it with a string ('...') or CAST it", code="TYPE_MISMATCH",
                                 construct=column.name, line=line, column=col, athena_accepts=False)


def _use_database(conn: duckdb.DuckDBPyConnection, database: str | None) -> None:
    """Athena's session: `/` of two integers is an integer (Trino truncates), and unqualified names find
    the views first (main), then the query's database, as Athena's context does."""
    conn.execute("SET integer_division = true")
    if database and _relation_exists_schema(conn, database):
        conn.execute(f"SET search_path = {_sql_string('main,' + quote_identifier(database))}")
    else:
        conn.execute("SET search_path = 'main'")


def _relation_exists_schema(conn: duckdb.DuckDBPyConnection, schema: str) -> bool:
    return bool(conn.execute("SELECT 1 FROM duckdb_schemas() WHERE schema_name = ?", [schema]).fetchall())


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def bind_parameters(statement: exp.Expression, parameters: Sequence[str] | None) -> exp.Expression:
    """Athena's ExecutionParameters: each `?` in order becomes the literal given for it (as SQL text)."""
    placeholders = [p for p in statement.find_all(exp.Placeholder, bfs=False) if p.this is None]  # `?` in text order
    parameters = list(parameters or [])
    if len(placeholders) != len(parameters):
        raise QueryError(f"the query has {len(placeholders)} parameter(s) (?) but {len(parameters)} value(s) were "
                         "given; Athena would reject it too", code="SYNTAX_ERROR", athena_accepts=False)
    for placeholder, value in zip(placeholders, parameters, strict=True):
        try:
            literal = sqlglot.parse_one(value, read=SOURCE_DIALECT)
        except ParseError:
            raise QueryError(f"execution parameter {value!r} is not a SQL literal; Athena would reject it too",
                             code="SYNTAX_ERROR", athena_accepts=False) from None
        placeholder.replace(literal)
    return statement


@dataclass
class Prepared:
    """A query checked and ready: its tree, the Athena text it becomes, and the DuckDB text that runs."""

    sql: str
    tree: exp.Expression
    duckdb_sql: str


def prepare(sql: str, parameters: Sequence[str] | None = None) -> Prepared:
    """Pure: parse, refuse what the mirror cannot run (one line), and transpile with the KPIs' path."""
    statement = parse_statement(sql)
    if parameters is not None or any(p.this is None for p in statement.find_all(exp.Placeholder)):
        statement = bind_parameters(statement, parameters)
    query = require_query(statement, sql)
    check_functions(query, sql)
    query = name_unnamed_columns(strip_catalog(query))
    athena_text = query.sql(dialect=SOURCE_DIALECT)
    return Prepared(sql, query, to_duckdb(athena_text))


def _diagnose(exc: duckdb.Error, prepared: Prepared) -> QueryError:
    """A DuckDB error as one line; a function DuckDB refuses is named as the user wrote it, with its position."""
    message = str(exc).splitlines()[0]
    name = None
    for pattern in (_DUCKDB_FN, _DUCKDB_ARGS):
        match = pattern.search(str(exc))
        if match:
            name = match.group(1).lower()
            break
    if name:
        for node in prepared.tree.find_all(exp.Func):
            head = _HEAD.match(node.sql(dialect="duckdb"))
            if head and head.group(1).lower() == name:
                user_name = _function_name(node)
                line, column = node_position(node, prepared.sql)
                if _DUCKDB_ARGS.search(str(exc)):
                    return QueryError(f"{user_name}{_where(line, column)}: the local mirror cannot run {user_name} "
                                      f"with these argument types ({message})", code="FUNCTION_NOT_FOUND",
                                      construct=user_name, line=line, column=column)
                return _cannot_run(user_name, prepared.sql, node)
        if _DUCKDB_FN.search(str(exc)):  # written by sqlglot for an operator (AT TIME ZONE -> at_timezone)
            return QueryError(f"{name}: Athena accepts its syntax; the local mirror cannot run {name} ({message})",
                              code="NOT_SUPPORTED", construct=name, athena_accepts=True)
    accepts = athena_accepts_syntax(prepared.sql)
    hint = "; Athena accepts its syntax" if accepts else ""
    return QueryError(f"the local mirror cannot run this query: {message}{hint}", code="GENERIC_USER_ERROR")


def _execute(conn: duckdb.DuckDBPyConnection, prepared: Prepared) -> duckdb.DuckDBPyRelation:
    try:
        return conn.sql(prepared.duckdb_sql)
    except duckdb.Error as exc:
        raise _diagnose(exc, prepared) from None


def _connection(conn_or_engine: Engine | duckdb.DuckDBPyConnection) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    if isinstance(conn_or_engine, Engine):
        return conn_or_engine.conn, conn_or_engine.table.database
    return conn_or_engine, None


def _run(conn_or_engine: Engine | duckdb.DuckDBPyConnection, sql: str, database: str | None,
         catalog: Catalog | None, parameters: Sequence[str] | None) -> tuple[Prepared, duckdb.DuckDBPyRelation]:
    conn, engine_database = _connection(conn_or_engine)
    database = database or engine_database
    prepared = prepare(sql, parameters)
    attach_tables(conn, prepared.tree, sql, database, catalog)
    _use_database(conn, database)
    check_comparisons(conn, prepared.tree, sql)
    return prepared, _execute(conn, prepared)


def run_query(conn_or_engine: Engine | duckdb.DuckDBPyConnection, sql: str, *, database: str | None = None,
              catalog: Catalog | None = None, parameters: Sequence[str] | None = None,
              max_rows: int | None = None) -> QueryResult:
    """The user's Athena SQL on DuckDB over the catalog's tables and the project's views.

    `conn_or_engine`: an Engine (analytics.engine.open_engine: the lake table and the views) or a
    DuckDB connection with whatever tables a test made. `database` is the query's context (Athena's
    QueryExecutionContext.Database; default: the Engine's Glue database); `catalog` resolves other
    tables the query names (GlueCatalog); `max_rows` keeps at most that many rows (`truncated` says
    there were more). Raises QueryError (one line) when the mirror cannot run it.
    """
    prepared, relation = _run(conn_or_engine, sql, database, catalog, parameters)
    columns = [c.lower() for c in relation.columns]
    types = [trino_type(t) for t in relation.types]
    try:
        fetched = relation.fetchall() if max_rows is None else relation.limit(max_rows + 1).fetchall()
    except duckdb.Error as exc:
        raise _diagnose(exc, prepared) from None
    rows = [tuple(row) for row in fetched[:max_rows]]
    return QueryResult(columns, types, rows, truncated=len(fetched) > len(rows))


def run_query_arrow(conn_or_engine: Engine | duckdb.DuckDBPyConnection, sql: str, *, database: str | None = None,
                    catalog: Catalog | None = None,
                    parameters: Sequence[str] | None = None) -> tuple[QueryResult, pa.Table]:
    """As run_query, but the rows as an Arrow table typed as the Trino types say (for CREATE TABLE AS)."""
    prepared, relation = _run(conn_or_engine, sql, database, catalog, parameters)
    columns = [c.lower() for c in relation.columns]
    types = [trino_type(t) for t in relation.types]
    try:
        table = relation.arrow()
    except duckdb.Error as exc:
        raise _diagnose(exc, prepared) from None
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    table = table.rename_columns(columns)
    schema = pa.schema([pa.field(c, arrow_type_of(t)) for c, t in zip(columns, types, strict=True)])
    return QueryResult(columns, types), table.cast(schema)


# --- the mirror: an Engine over the project's lake, plus the catalog -----------------------------


@dataclass
class Mirror:
    """An open DuckDB with the project's table and views (when the crawler has made the table) and Glue."""

    conn: duckdb.DuckDBPyConnection
    catalog: Catalog
    database: str
    engine: Engine | None = None

    def run(self, sql: str, database: str | None = None, parameters: Sequence[str] | None = None) -> QueryResult:
        return run_query(self.conn, sql, database=database or self.database, catalog=self.catalog,
                         parameters=parameters)

    def run_arrow(self, sql: str, database: str | None = None,
                  parameters: Sequence[str] | None = None) -> tuple[QueryResult, pa.Table]:
        return run_query_arrow(self.conn, sql, database=database or self.database, catalog=self.catalog,
                               parameters=parameters)

    def interrupt(self) -> None:
        self.conn.interrupt()

    def completions(self) -> list[str]:
        """Words an interactive prompt completes: the views and tables DuckDB has, their columns, Trino's functions."""
        names = self.conn.execute(
            "SELECT DISTINCT CASE WHEN schema_name = 'main' THEN table_name ELSE schema_name || '.' || table_name END "
            "FROM duckdb_tables() WHERE NOT internal UNION SELECT DISTINCT CASE WHEN schema_name = 'main' THEN "
            "view_name ELSE schema_name || '.' || view_name END FROM duckdb_views() WHERE NOT internal "
            "UNION SELECT DISTINCT column_name FROM duckdb_columns() WHERE NOT internal").fetchall()
        words = {str(n[0]) for n in names if not str(n[0]).startswith("__")}
        return sorted(words | TRINO_FUNCTIONS)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_mirror(clients: Clients, settings: Settings, console: Console | None = None,
                filesystem: pafs.FileSystem | None = None) -> Mirror:
    """The local mirror of Athena for this target: the lake table and views if they exist, and Glue."""
    catalog = GlueCatalog(clients, settings, filesystem)
    table = catalog.table(settings.glue_database, settings.glue_table)
    if table is None:  # nothing crawled yet: other tables (and SELECT 1) still work
        conn = duckdb.connect(":memory:")
        conn.execute("SET TimeZone = 'UTC'")
        return Mirror(conn, catalog, settings.glue_database)
    engine = open_engine(clients, settings, console, table=table, filesystem=filesystem)
    return Mirror(engine.conn, catalog, settings.glue_database, engine)


def query_lake(clients: Clients, settings: Settings, sql: str, console: Console | None = None,
               database: str | None = None) -> QueryResult:
    """`make query`: one Athena statement on the local mirror of this target's lake."""
    with open_mirror(clients, settings, console) as mirror:
        return mirror.run(sql, database)


# --- types and text ------------------------------------------------------------------------------

_SIMPLE_TYPES = {
    "boolean": "boolean", "tinyint": "tinyint", "smallint": "smallint", "integer": "integer", "bigint": "bigint",
    "hugeint": "bigint", "utinyint": "smallint", "usmallint": "integer", "uinteger": "bigint",
    "ubigint": "decimal(20,0)", "uhugeint": "decimal(38,0)", "float": "real", "double": "double",
    "varchar": "varchar", "blob": "varbinary", "bit": "varbinary", "date": "date", "time": "time",
    "timestamp": "timestamp", "timestamp_s": "timestamp", "timestamp_ms": "timestamp", "timestamp_ns": "timestamp",
    "timestamp with time zone": "timestamp with time zone", "time with time zone": "time with time zone",
    "interval": "interval day to second", "uuid": "uuid", "enum": "varchar", "null": "unknown",
}


def trino_type(duck: Any) -> str:
    """Pure: a DuckDB column type (DuckDBPyType) as Athena/Trino names it."""
    text = str(duck)
    kind = getattr(duck, "id", text.lower())
    if text == "JSON":
        return "json"
    if kind == "decimal":
        children = dict(duck.children)
        return f"decimal({children['precision']},{children['scale']})"
    if kind in ("list", "array"):
        return f"array({trino_type(dict(duck.children)['child'])})"
    if kind == "map":
        children = dict(duck.children)
        return f"map({trino_type(children['key'])}, {trino_type(children['value'])})"
    if kind == "struct":
        return "row(" + ", ".join(f"{name} {trino_type(child)}" for name, child in duck.children) + ")"
    return _SIMPLE_TYPES.get(kind, "varchar")


_GLUE_NAMES = {"varchar": "string", "integer": "int", "real": "float", "varbinary": "binary",
               "timestamp with time zone": "timestamp", "json": "string", "uuid": "string", "time": "string",
               "interval day to second": "string", "unknown": "string", "time with time zone": "string"}


def _split_type_args(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def glue_type_of(trino: str) -> str:
    """Pure: a Trino type name as the Hive type a Glue column declares (CREATE TABLE AS)."""
    text = trino.strip()
    if text.startswith("array(") and text.endswith(")"):
        return f"array<{glue_type_of(text[6:-1])}>"
    if text.startswith("map(") and text.endswith(")"):
        key, value = _split_type_args(text[4:-1])
        return f"map<{glue_type_of(key)},{glue_type_of(value)}>"
    if text.startswith("row(") and text.endswith(")"):
        fields = []
        for part in _split_type_args(text[4:-1]):
            name, _, kind = part.partition(" ")
            fields.append(f"{name.strip(chr(34)).lower()}:{glue_type_of(kind)}")
        return "struct<" + ",".join(fields) + ">"
    return _GLUE_NAMES.get(text, text)


def arrow_type_of(trino: str) -> pa.DataType:
    """Pure: the Arrow type a Trino type is written as in Parquet (via its Glue type)."""
    from lake.glue_schema import arrow_type

    return arrow_type(glue_type_of(trino))


def java_double(value: float) -> str:
    """Pure: a double as Trino (Java's Double.toString) prints it: 20.0, 0.125, 1.0E7, 1.5E-5, NaN, Infinity."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(str(d) for d in digits)
    scientific = exponent + len(digits) - 1
    return f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{scientific}"


def java_float(value: float) -> str:
    """Pure: a real (32-bit float) with the fewest digits that read back to the same float."""
    if math.isnan(value) or math.isinf(value) or value == 0:
        return java_double(value)
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == struct.unpack("f", struct.pack("f", value))[0]:
            return java_double(float(text))
    return java_double(value)


def _timestamp_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
        return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d} UTC"
    return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}"


def _interval_text(value: timedelta) -> str:
    total_ms = round(value.total_seconds() * 1000)
    sign = "-" if total_ms < 0 else ""
    total_ms = abs(total_ms)
    days, rest = divmod(total_ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{sign}{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _element_types(trino: str) -> tuple[str, ...]:
    text = trino.strip()
    for prefix in ("array(", "map("):
        if text.startswith(prefix) and text.endswith(")"):
            return tuple(_split_type_args(text[len(prefix):-1]))
    if text.startswith("row(") and text.endswith(")"):
        return tuple(part.partition(" ")[2] for part in _split_type_args(text[4:-1]))
    return ()


def athena_text(value: Any, trino: str = "varchar") -> str | None:
    """Pure: a value as Athena writes it in GetQueryResults' VarCharValue and the result CSV (None for NULL)."""
    if value is None:
        return None
    kind = trino.split("(")[0].strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_float(value) if kind == "real" else java_double(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _timestamp_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return f"{value:%H:%M:%S}.{value.microsecond // 1000:03d}"
    if isinstance(value, timedelta):
        return _interval_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return " ".join(f"{b:02x}" for b in bytes(value))
    inner = _element_types(trino)
    if isinstance(value, dict):
        if kind == "row":
            types = inner or ("varchar",) * len(value)
            fields = zip(value.items(), types, strict=False)
            return "{" + ", ".join(f"{k}={_nested(v, t)}" for (k, v), t in fields) + "}"
        key_type, value_type = inner if len(inner) == 2 else ("varchar", "varchar")
        return "{" + ", ".join(f"{_nested(k, key_type)}={_nested(v, value_type)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        element = inner[0] if inner else "varchar"
        return "[" + ", ".join(_nested(v, element) for v in value) + "]"
    return str(value)


def _nested(value: Any, trino: str) -> str:
    text = athena_text(value, trino)
    return "null" if text is None else text


# --- output for the CLI --------------------------------------------------------------------------


def _json_value(value: Any, trino: str) -> Any:
    """Pure: a value for JSON output (Decimal kept, written with its exact digits by _json_text)."""
    if value is None or isinstance(value, bool | int | str | Decimal):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else java_double(value)
    if isinstance(value, list | tuple):
        element = (_element_types(trino) or ("varchar",))[0]
        return [_json_value(v, element) for v in value]
    if isinstance(value, dict) and trino.startswith("row("):
        types = _element_types(trino) or ("varchar",) * len(value)
        return {k: _json_value(v, t) for (k, v), t in zip(value.items(), types, strict=False)}
    if isinstance(value, dict):
        key_type, value_type = (*_element_types(trino), "varchar", "varchar")[:2]
        return {athena_text(k, key_type): _json_value(v, value_type) for k, v in value.items()}
    return athena_text(value, trino)


def _json_text(value: Any) -> str:
    """Pure: JSON text; a Decimal is a JSON number with exactly its digits (20.00 stays 20.00)."""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_json_text(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def result_rows_text(result: QueryResult) -> list[list[str | None]]:
    """Every value as Athena prints it (None for NULL)."""
    return [[athena_text(v, t) for v, t in zip(row, result.types, strict=True)] for row in result.rows]


def result_table(result: QueryResult, title: str | None = None) -> Any:
    """A rich Table: a header per column with its type under the name, NULL shown dimmed."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold")
    for name, kind in zip(result.columns, result.types, strict=True):
        numeric = kind.split("(")[0] in ("tinyint", "smallint", "integer", "bigint", "real", "double", "decimal")
        table.add_column(Text(name) + Text(f"\n{kind}", style="dim"), justify="right" if numeric else "left")
    for row in result_rows_text(result):
        table.add_row(*[Text("NULL", style="dim") if v is None else Text(v) for v in row])
    return table


def format_result(result: QueryResult, fmt: str = "table", width: int = 120) -> str:
    """The result as text for the CLI: `table` (rich, plain text), `csv` (header + rows, NULL empty), `json`.

    JSON is one array of objects, keys in column order; numbers stay numbers (decimals with their exact
    digits), timestamps and dates are Athena's text, NULL is null.
    """
    if fmt not in RESULT_FORMATS:
        raise TerminalError(f"FORMAT={fmt!r} is unknown; use one of {', '.join(RESULT_FORMATS)}")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result_rows_text(result):
            writer.writerow(["" if v is None else v for v in row])
        return out.getvalue()
    if fmt == "json":
        records = [_json_text({c: _json_value(v, t) for c, v, t in zip(result.columns, row, result.types, strict=True)})
                   for row in result.rows]
        return "[\n" + ",\n".join(f"  {r}" for r in records) + ("\n]\n" if records else "]\n")
    from rich.console import Console as RichConsole

    out = io.StringIO()
    RichConsole(file=out, width=width, color_system=None, highlight=False).print(result_table(result))
    footer = f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})"
    return out.getvalue() + footer + "\n"
