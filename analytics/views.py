"""The three views every KPI reads, built from the catalog and the SQL files (all in Athena SQL).

- `sales_orders_cdc`: the raw change log, i.e. the Glue table, with each contract column cast to
  the contract's type (lake/schema.py). For Parquet that is the identity; for JSON lines, where
  Glue's classifier types timestamps as string and money as double, it parses them back. A
  contract column the catalog lacks reads as NULL; columns the contract does not know (added
  later by the crawler) pass through. Generated here from the TableInfo, not a file, because it
  depends on what the crawler found.
- `sales_orders_current` and `sales_daily`: the files `view_*.sql` in analytics/sql/.

DuckDB gets them as CREATE VIEW. Athena gets them inlined as CTEs in front of each KPI query:
MiniStack's Athena runs every statement in a fresh DuckDB connection, so a CREATE VIEW there
does not outlive its statement, while CTEs work the same on Athena and on MiniStack, and leave
nothing behind in the Glue database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from analytics.catalog import CONTRACT_COLUMNS, TableInfo, quote_identifier
from analytics.dialect import parse
from common.errors import TerminalError

SQL_DIR = Path(__file__).resolve().parent / "sql"
CDC_VIEW = "sales_orders_cdc"
FILE_VIEWS = ("sales_orders_current", "sales_daily")  # in dependency order
VIEW_NAMES = (CDC_VIEW, *FILE_VIEWS)
_TITLE = re.compile(r"^--\s*title:\s*(.+)$", re.MULTILINE)
_KPI_FILE = re.compile(r"^kpi_(\d+)_(\w+)\.sql$")

# Glue type -> the type name Trino's CAST accepts.
_TRINO_NAMES = {"string": "varchar", "int": "integer"}


def trino_type(glue_type: str) -> str:
    return _TRINO_NAMES.get(glue_type, glue_type)


def _contract_expression(name: str, contract_type: str, catalog_type: str | None) -> str:
    column = quote_identifier(name)
    if catalog_type is None:
        return f"CAST(NULL AS {trino_type(contract_type)}) AS {column}"
    if catalog_type == contract_type:
        return column
    if contract_type == "timestamp" and catalog_type == "string":
        return f"CAST(from_iso8601_timestamp({column}) AS timestamp) AS {column}"
    return f"CAST({column} AS {trino_type(contract_type)}) AS {column}"


def cdc_view_sql(table: TableInfo) -> str:
    """Pure: the `sales_orders_cdc` SELECT over the Glue table, in Athena SQL."""
    catalog = {c.name: c.type for c in table.columns}
    contract = {c.name for c in CONTRACT_COLUMNS}
    select = [_contract_expression(c.name, c.type, catalog.get(c.name)) for c in CONTRACT_COLUMNS]
    select += [quote_identifier(c.name) for c in table.columns if c.name not in contract]
    select += [quote_identifier(k.name) for k in table.partition_keys]
    return "SELECT\n    " + ",\n    ".join(select) + f"\nFROM {table.qualified_name}"


def read_sql(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TerminalError(f"SQL file {path} is missing; restore it from the repository") from None


def view_sql(name: str, table: TableInfo, sql_dir: Path = SQL_DIR) -> str:
    """The Athena SELECT that defines one view."""
    if name == CDC_VIEW:
        return cdc_view_sql(table)
    if name not in FILE_VIEWS:
        raise TerminalError(f"unknown view {name!r}; views are {', '.join(VIEW_NAMES)}")
    return read_sql(sql_dir / f"view_{name}.sql")


@dataclass(frozen=True)
class KpiQuery:
    name: str
    title: str
    sql: str
    path: Path


def kpi_queries(sql_dir: Path = SQL_DIR) -> list[KpiQuery]:
    """Every `kpi_NN_<name>.sql`, ordered by NN; the title is the file's `-- title:` line."""
    found = []
    for path in sql_dir.glob("kpi_*.sql"):
        match = _KPI_FILE.match(path.name)
        if not match:
            raise TerminalError(f"{path.name}: name KPI files kpi_<NN>_<name>.sql")
        sql = read_sql(path)
        title = _TITLE.search(sql)
        found.append((int(match.group(1)), KpiQuery(match.group(2), title.group(1).strip() if title
                                                    else match.group(2).replace("_", " "), sql, path)))
    return [q for _, q in sorted(found, key=lambda item: (item[0], item[1].name))]


def referenced_tables(tree: exp.Expression) -> set[str]:
    """Unqualified table names (a view is never qualified; the Glue table always is)."""
    return {t.name for t in tree.find_all(exp.Table) if not t.db}


def inline_views(athena_sql: str, table: TableInfo, sql_dir: Path = SQL_DIR) -> str:
    """Pure: the query with the views it needs (transitively) prepended as CTEs, in Athena SQL.

    Composed as text, so the SQL files reach Athena exactly as written; sqlglot only finds which
    views are needed. The query's own CTEs keep their place after the views; a query CTE named
    like a view is an error rather than a silent shadowing.
    """
    tree = parse(athena_sql)
    own = tree.args.get("with_")
    own_names = {c.alias for c in own.expressions} if own else set()
    clash = own_names & set(VIEW_NAMES)
    if clash:
        raise TerminalError(f"a KPI query defines a CTE named like a view ({', '.join(sorted(clash))}); rename it")
    texts = {name: _statement_text(view_sql(name, table, sql_dir)) for name in VIEW_NAMES}
    needed: set[str] = set()
    pending = referenced_tables(tree) & set(VIEW_NAMES)
    while pending:
        name = pending.pop()
        needed.add(name)
        pending |= (referenced_tables(parse(texts[name])) & set(VIEW_NAMES)) - needed
    if not needed:
        return athena_sql
    ctes = ",\n".join(f"{name} AS (\n{_indent(texts[name])}\n)" for name in VIEW_NAMES if name in needed)
    query = _statement_text(athena_sql)
    match = _LEADING_WITH.match(query)
    if match:
        return f"{match.group(1)}WITH {ctes},\n{query[match.end():]}"
    return f"WITH {ctes}\n{query}"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else line for line in text.splitlines())


def _statement_text(sql: str) -> str:
    return sql.strip().rstrip(";").rstrip()


# Leading comment lines, then the WITH keyword of the query's own CTEs.
_LEADING_WITH = re.compile(r"^((?:\s*--[^\n]*\n)*\s*)WITH\s+(?!RECURSIVE\b)", re.IGNORECASE)
