"""Athena's query API over the local mirror: executions, results in S3, workgroups' result settings.

What it serves (https://docs.aws.amazon.com/athena/latest/APIReference/):
- StartQueryExecution: the workgroup's configuration is read from the emulator (CreateWorkGroup
  stays there); with EnforceWorkGroupConfiguration its OutputLocation (and encryption) wins over the
  client's, as on AWS; no location at all is InvalidRequestException. A syntax error is refused here
  (InvalidRequestException, AthenaErrorCode MALFORMED_QUERY); anything else the mirror cannot run is an
  execution that ends FAILED with the one line of analytics/query.py as StateChangeReason.
  ExecutionParameters fill the query's `?` in order; ClientRequestToken makes a start idempotent.
- The query runs on a worker: SELECT (and WITH, VALUES) through analytics.query; CREATE TABLE AS
  (Parquet, as Athena's CTAS default; no partitioning or bucketing) writes its objects, a
  `<id>-manifest.csv` and the table in Glue; DROP TABLE removes the Glue table. Results land exactly
  at the OutputLocation reported: `<location>/<id>.csv` with `<id>.csv.metadata` beside it.
- GetQueryExecution, BatchGetQueryExecution, ListQueryExecutions (per workgroup, newest first),
  StopQueryExecution (interrupts DuckDB), GetQueryResults (header row first for a SELECT, values as
  Athena's text, ColumnInfo with Trino types, NextToken paging of at most 1000 rows) and
  GetQueryRuntimeStatistics (timeline and row counts).
- GetWorkGroup answers the emulator's workgroup with every Configuration member an SDK reads
  (EnforceWorkGroupConfiguration and friends, which MiniStack leaves out for "primary").
- A workgroup with ManagedQueryResultsConfiguration.Enabled keeps results in "Athena-owned storage":
  no OutputLocation, nothing written to S3, rows read through GetQueryResults only (what clients that
  cannot reach a local S3, such as pyarrow's S3FileSystem, can use).
Every other Athena action is the emulator's (server.py forwards it).

The CSV is Athena's: every value double-quoted, a NULL empty and unquoted, "\\n" between rows. The
`.metadata` object holds the result's ColumnInfo as JSON (Athena writes an undocumented binary
encoding there that no client reads).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlparse

import duckdb
import pyarrow.parquet as pq
from sqlglot import exp

from analytics.athena_api.protocol import QUERY_ACTIONS, ApiError, invalid
from analytics.athena_api.workgroups import ENGINE_VERSION, EmulatorAthena, emulator_athena, get_work_group
from analytics.query import (
    Mirror,
    QueryError,
    QueryResult,
    athena_text,
    glue_type_of,
    open_mirror,
    parse_statement,
    statement_kind,
)
from common.aws import Clients, error_code
from common.config import Settings
from common.errors import PipelineError
from lake.glue_schema import storage_descriptor

log = logging.getLogger("athena_api")

FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
MAX_RESULTS = 1000
LIST_MAX = 50
HISTORY = 10_000  # executions kept (Athena keeps 45 days)
# AthenaError.ErrorCategory: 1 system, 2 user, 3 other.
USER_ERROR, SYSTEM_ERROR = 2, 1


@dataclass
class Execution:
    """One query execution and everything GetQueryExecution / GetQueryResults report about it."""

    id: str
    query: str
    workgroup: str
    database: str
    catalog: str
    output_location: str
    statement_type: str
    substatement_type: str
    parameters: list[str] | None = None
    encryption: dict[str, Any] | None = None
    state: str = "QUEUED"
    reason: str = ""
    athena_error: dict[str, Any] | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    completed: float | None = None
    result: QueryResult | None = None
    text_rows: list[list[str | None]] = field(default_factory=list)
    update_count: int = 0
    manifest_location: str = ""
    managed: bool = False  # the workgroup keeps results itself (ManagedQueryResultsConfiguration): none in S3
    token: str | None = None  # its ClientRequestToken, forgotten with it
    mirror: Mirror | None = None

    def describe(self) -> dict[str, Any]:
        """Pure: the QueryExecution structure of GetQueryExecution."""
        status: dict[str, Any] = {"State": self.state, "SubmissionDateTime": self.submitted}
        if self.completed is not None:
            status["CompletionDateTime"] = self.completed
        if self.reason:
            status["StateChangeReason"] = self.reason
        if self.athena_error:
            status["AthenaError"] = self.athena_error
        end = self.completed or time.time()
        engine_ms = int(((end - self.started) if self.started else 0) * 1000)
        queued_ms = int(((self.started or end) - self.submitted) * 1000)
        statistics: dict[str, Any] = {
            "EngineExecutionTimeInMillis": engine_ms,
            "DataScannedInBytes": 0,
            "TotalExecutionTimeInMillis": engine_ms + queued_ms,
            "QueryQueueTimeInMillis": queued_ms,
            "ServicePreProcessingTimeInMillis": 0,
            "QueryPlanningTimeInMillis": 0,
            "ServiceProcessingTimeInMillis": 0,
            "ResultReuseInformation": {"ReusedPreviousResult": False},
        }
        if self.manifest_location:
            statistics["DataManifestLocation"] = self.manifest_location
        result_configuration: dict[str, Any] = {"OutputLocation": self.output_location} if self.output_location else {}
        if self.encryption and not self.managed:
            result_configuration["EncryptionConfiguration"] = self.encryption
        described: dict[str, Any] = {
            "QueryExecutionId": self.id,
            "Query": self.query,
            "StatementType": self.statement_type,
            "ResultConfiguration": result_configuration,
            "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": False}},
            "QueryExecutionContext": {"Database": self.database, "Catalog": self.catalog},
            "Status": status,
            "Statistics": statistics,
            "WorkGroup": self.workgroup,
            "EngineVersion": ENGINE_VERSION,
            "SubstatementType": self.substatement_type,
        }
        if self.managed:
            described["ManagedQueryResultsConfiguration"] = {"Enabled": True}
        if self.parameters:
            described["ExecutionParameters"] = self.parameters
        return described


def split_s3(uri: str) -> tuple[str, str]:
    """Pure: s3://bucket/key -> (bucket, key)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a") or not parsed.netloc:
        raise invalid(f"{uri} is not an S3 location (s3://bucket/prefix/)")
    return parsed.netloc, parsed.path.lstrip("/")


def csv_text(columns: list[str], rows: list[list[str | None]]) -> str:
    """Pure: Athena's result CSV: every value quoted, NULL empty and unquoted, one row per line."""
    def line(values: list[str | None]) -> str:
        return ",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in values)

    return "".join(line(list(values)) + "\n" for values in [list(columns), *rows])


def column_info(name: str, trino: str) -> dict[str, Any]:
    """Pure: one ColumnInfo: the type's base name, and its precision and scale as Athena reports them."""
    base = trino.split("(")[0].strip()
    precision, scale = {
        "boolean": (1, 0), "tinyint": (3, 0), "smallint": (5, 0), "integer": (10, 0), "bigint": (19, 0),
        "real": (17, 0), "double": (17, 0), "varchar": (2147483647, 0), "varbinary": (2147483647, 0),
        "date": (0, 0), "timestamp": (3, 0), "time": (3, 0), "json": (2147483647, 0),
    }.get(base, (0, 0))
    if base == "decimal":
        digits = trino[trino.index("(") + 1:trino.rindex(")")].split(",")
        precision, scale = int(digits[0]), int(digits[1]) if len(digits) > 1 else 0
    if trino.startswith("timestamp with time zone"):
        base, precision = "timestamp with time zone", 3
    if trino.startswith("interval"):
        base = trino
    return {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name,
            "Type": base, "Precision": precision, "Scale": scale, "Nullable": "UNKNOWN",
            "CaseSensitive": base in ("varchar", "char", "json")}


def _kinds(statement: exp.Expression | None, query: str) -> tuple[str, str]:
    """Pure: (StatementType, SubstatementType) as Athena names them."""
    if statement is None:
        return "DML", "SELECT"
    kind = statement_kind(statement)
    if kind == "SELECT":
        return "DML", "SELECT"
    if kind == "CREATE TABLE AS":
        return "DDL", "CREATE_TABLE_AS_SELECT"
    if kind.startswith(("CREATE", "DROP", "ALTER", "MSCK")):
        return "DDL", kind.replace(" ", "_")
    if kind in ("INSERT INTO", "DELETE", "UPDATE", "MERGE INTO", "UNLOAD"):
        return "DML", kind.split()[0]
    return "UTILITY", kind.replace(" ", "_")


class AthenaService:
    """The query executions of one endpoint, run by a small pool of workers over fresh mirrors."""

    def __init__(self, clients: Clients, settings: Settings, *, workers: int = 2,
                 emulator: EmulatorAthena | None = None,
                 mirror_factory: Callable[[], Mirror] | None = None) -> None:
        self.clients, self.settings = clients, settings
        self._executions: dict[str, Execution] = {}
        self._tokens: dict[str, tuple[str, dict[str, Any]]] = {}  # ClientRequestToken -> (execution id, request)
        self._buckets: set[str] = set()  # result buckets seen to exist
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="athena-query")
        self._emulator_athena = emulator or emulator_athena(settings)
        self._mirror_factory = mirror_factory or (lambda: open_mirror(clients, settings))

    def close(self) -> None:
        with self._lock:
            running = [e for e in self._executions.values() if e.state not in FINAL]
        for execution in running:
            self._cancel(execution, "the Athena endpoint stopped")
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- the emulator's own Athena (workgroups live there: workgroups.py) ----------------------------

    def get_work_group(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        return get_work_group(self._emulator_athena, headers, params)

    # --- starting ---------------------------------------------------------------------------------

    def start_query_execution(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        query = params.get("QueryString")
        if not isinstance(query, str) or not query.strip():
            raise invalid("QueryString is required and must not be empty")
        token = params.get("ClientRequestToken")
        request = {k: v for k, v in params.items() if k != "ClientRequestToken"}
        if token:
            with self._lock:
                if token in self._tokens:  # the same request again: its query, not another one
                    execution_id, first = self._tokens[token]
                    if request != first:
                        changed = sorted(k for k in {*request, *first} if request.get(k) != first.get(k))
                        raise invalid(f"ClientRequestToken {token} was used for another request: "
                                      f"{', '.join(changed)} changed; send a new token for a new query")
                    return {"QueryExecutionId": execution_id}
        workgroup_name = params.get("WorkGroup") or "primary"
        workgroup = self.get_work_group(headers, {"WorkGroup": workgroup_name})["WorkGroup"]
        if workgroup.get("State", "ENABLED") != "ENABLED":
            raise invalid(f"WorkGroup {workgroup_name} is disabled.")
        managed = bool(((workgroup.get("Configuration") or {}).get("ManagedQueryResultsConfiguration") or {})
                       .get("Enabled"))
        output, encryption = ("", None) if managed else \
            self._result_location(workgroup, params.get("ResultConfiguration") or {})
        if output:
            self._verify_bucket(output)
        context = params.get("QueryExecutionContext") or {}
        statement = self._parse_or_refuse(query)
        statement_type, substatement = _kinds(statement, query)
        execution_id = str(uuid.uuid4())
        suffix = {"DML": ".csv", "UTILITY": ".txt"}.get(statement_type, ".txt")
        if substatement == "CREATE_TABLE_AS_SELECT":
            suffix = ""
        execution = Execution(
            id=execution_id, query=query, workgroup=workgroup_name,
            database=context.get("Database") or "default", catalog=context.get("Catalog") or "awsdatacatalog",
            output_location=f"{output.rstrip('/')}/{execution_id}{suffix}" if output else "",
            statement_type=statement_type, substatement_type=substatement,
            parameters=params.get("ExecutionParameters"), encryption=encryption, managed=managed, token=token)
        with self._lock:
            self._executions[execution_id] = execution
            if token:
                self._tokens[token] = (execution_id, request)
            self._forget_old()
        self._pool.submit(self._run, execution)
        return {"QueryExecutionId": execution_id}

    def _verify_bucket(self, output: str) -> None:
        """Athena checks the result bucket when the query is submitted: a missing one is StartQueryExecution's
        own InvalidRequestException, not a query id for a query that can only fail. Once per bucket; any other
        answer lets the query try (writing its result says what went wrong)."""
        bucket, _ = split_s3(output)
        if bucket in self._buckets:
            return
        try:
            self.clients.s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise invalid(f"Unable to verify/create output bucket {bucket}") from None
            return
        self._buckets.add(bucket)

    @staticmethod
    def _result_location(workgroup: dict[str, Any], client: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """Athena's rule: an enforcing workgroup's settings win; else the client's, else the workgroup's."""
        configuration = workgroup.get("Configuration") or {}
        group = configuration.get("ResultConfiguration") or {}
        enforced = bool(configuration.get("EnforceWorkGroupConfiguration"))
        if enforced and group.get("OutputLocation"):
            output, encryption = group["OutputLocation"], group.get("EncryptionConfiguration")
        else:
            output = client.get("OutputLocation") or group.get("OutputLocation")
            encryption = client.get("EncryptionConfiguration") or group.get("EncryptionConfiguration")
        if not output:
            raise invalid("No output location provided. An output location is required either through the "
                          "Workgroup result configuration setting or as an API input.")
        split_s3(output)
        return output, encryption

    @staticmethod
    def _parse_or_refuse(query: str) -> exp.Expression | None:
        """A syntax error is refused at submission, as Athena refuses a malformed query."""
        try:
            return parse_statement(query)
        except QueryError as exc:
            if exc.code == "SYNTAX_ERROR":
                raise invalid(str(exc), AthenaErrorCode="MALFORMED_QUERY") from None
            return None

    def _forget_old(self) -> None:
        while len(self._executions) > HISTORY:
            oldest = next(iter(self._executions))
            if self._executions[oldest].state not in FINAL:
                break
            forgotten = self._executions.pop(oldest)
            if forgotten.token:
                self._tokens.pop(forgotten.token, None)

    # --- running ----------------------------------------------------------------------------------

    def _run(self, execution: Execution) -> None:
        with self._lock:
            if execution.state != "QUEUED":
                return
            execution.state, execution.started = "RUNNING", time.time()
        try:
            with self._mirror_factory() as mirror:
                execution.mirror = mirror
                if execution.state == "CANCELLED":
                    return
                statement = parse_statement(execution.query)
                if statement_kind(statement) == "CREATE TABLE AS":
                    self._create_table_as(execution, mirror, statement)
                elif isinstance(statement, exp.Drop) and str(statement.args.get("kind")).upper() == "TABLE":
                    self._drop_table(execution, statement)
                else:
                    result = mirror.run(execution.query, execution.database, execution.parameters)
                    self._write_select(execution, result)
            self._finish(execution, "SUCCEEDED")
        except QueryError as exc:
            self._finish(execution, "FAILED", str(exc), USER_ERROR)
        except duckdb.InterruptException:
            self._finish(execution, "CANCELLED", "Query was cancelled by user")
        except ApiError as exc:
            self._finish(execution, "FAILED", exc.message, USER_ERROR)
        except PipelineError as exc:
            self._finish(execution, "FAILED", str(exc).splitlines()[0], USER_ERROR)
        except Exception as exc:  # the endpoint never dies of one query; the log keeps the trace
            log.error("query %s failed:\n%s", execution.id, traceback.format_exc())
            self._finish(execution, "FAILED", f"INTERNAL_ERROR: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                         SYSTEM_ERROR)
        finally:
            execution.mirror = None

    def _finish(self, execution: Execution, state: str, reason: str = "", category: int | None = None) -> None:
        with self._lock:
            if execution.state == "CANCELLED":
                return
            execution.state, execution.completed = state, time.time()
            if reason:
                execution.reason = reason
            if category is not None:
                execution.athena_error = {"ErrorCategory": category, "Retryable": category == SYSTEM_ERROR,
                                          "ErrorMessage": reason}

    def _put(self, uri: str, body: bytes, content_type: str, encryption: dict[str, Any] | None) -> None:
        bucket, key = split_s3(uri)
        extra: dict[str, Any] = {}
        option = (encryption or {}).get("EncryptionOption")
        if option == "SSE_S3":
            extra["ServerSideEncryption"] = "AES256"
        elif option == "SSE_KMS":
            extra["ServerSideEncryption"] = "aws:kms"
            if (encryption or {}).get("KmsKey"):
                extra["SSEKMSKeyId"] = encryption["KmsKey"]  # type: ignore[index]
        try:
            self.clients.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                raise ApiError("InvalidRequestException", f"Unable to verify/create output bucket {bucket}") from None
            raise

    def _write_select(self, execution: Execution, result: QueryResult) -> None:
        rows = [[athena_text(v, t) for v, t in zip(row, result.types, strict=True)] for row in result.rows]
        execution.result, execution.text_rows = result, rows
        if execution.managed:  # Athena-owned storage: the rows are read through GetQueryResults only
            return
        self._put(execution.output_location, csv_text(result.columns, rows).encode(), "text/csv",
                  execution.encryption)
        metadata = {"ColumnInfo": [column_info(c, t) for c, t in zip(result.columns, result.types, strict=True)]}
        self._put(f"{execution.output_location}.metadata", json.dumps(metadata).encode(), "application/json",
                  execution.encryption)

    def _create_table_as(self, execution: Execution, mirror: Mirror, statement: exp.Expression) -> None:
        """CREATE TABLE [db.]t WITH (format = 'PARQUET', external_location = ...) AS <query> [WITH NO DATA]."""
        table = statement.this
        name, database = table.name, table.db or execution.database
        options: dict[str, str] = {}
        no_data = False
        for prop in (statement.args.get("properties") or exp.Properties(expressions=[])).expressions:
            if isinstance(prop, exp.FileFormatProperty):
                options["format"] = prop.this.name
            elif isinstance(prop, exp.WithDataProperty):
                no_data = bool(prop.args.get("no"))
            elif isinstance(prop, exp.PartitionedByProperty):
                options["partitioned_by"] = prop.this.sql()
            elif isinstance(prop, exp.Property):
                options[prop.name.lower()] = prop.args["value"].name if isinstance(prop.args.get("value"),
                                                                                   exp.Literal) else "?"
            else:
                options[type(prop).__name__] = prop.sql(dialect="athena")
        unsupported = sorted(set(options) - {"format", "external_location", "write_compression", "table_type"})
        if unsupported or options.get("table_type", "hive").lower() != "hive" \
                or options.get("format", "parquet").lower() != "parquet":
            what = ", ".join(unsupported) or (f"table_type={options['table_type']}" if "table_type" in options
                                              else f"format={options.get('format')}")
            raise QueryError(f"CREATE TABLE AS with {what} at line 1, column 1: Athena accepts it; the local "
                             "mirror writes unpartitioned Parquet tables only", code="NOT_SUPPORTED",
                             construct="CREATE TABLE AS", line=1, column=1, athena_accepts=True)
        glue = self.clients.glue
        try:
            glue.get_table(DatabaseName=database, Name=name)
            raise QueryError(f"table {database}.{name} already exists; Athena would reject it too",
                             code="ALREADY_EXISTS", construct=f"{database}.{name}", athena_accepts=False)
        except QueryError:
            raise
        except Exception as exc:
            if error_code(exc) != "EntityNotFoundException":
                raise
        if execution.managed and not options.get("external_location"):
            raise QueryError("CREATE TABLE AS in a workgroup with managed query results at line 1, column 1: name "
                             "its external_location; the local mirror keeps no Athena-owned storage",
                             code="NOT_SUPPORTED", construct="CREATE TABLE AS", line=1, column=1)
        base = execution.output_location.rsplit("/", 1)[0]
        location = options.get("external_location") or f"{base}/tables/{execution.id}"
        location = location.rstrip("/") + "/"
        bucket, prefix = split_s3(location)
        if self.clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
            raise QueryError(f"HIVE_PATH_ALREADY_EXISTS: target directory for table '{database}.{name}' already "
                             f"exists: {location}; Athena would reject it too", code="HIVE_PATH_ALREADY_EXISTS",
                             athena_accepts=False)
        inner = statement.expression.sql(dialect="athena")
        result, arrow = mirror.run_arrow(inner, execution.database, execution.parameters)
        paths = []
        if not no_data:
            compression = options.get("write_compression", "gzip").lower()
            buffer = io.BytesIO()
            pq.write_table(arrow, buffer, compression=None if compression == "none" else compression)
            path = f"{location}{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}_{execution.id}_00000"
            self._put(path, buffer.getvalue(), "application/octet-stream", None)
            paths.append(path)
        columns = tuple((c, glue_type_of(t)) for c, t in zip(result.columns, result.types, strict=True))
        glue.create_table(DatabaseName=database, TableInput={
            "Name": name, "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "has_encrypted_data": "false"},
            "StorageDescriptor": storage_descriptor(location.rstrip("/"), "parquet", columns, compressed=False),
            "PartitionKeys": [],
        })
        if not execution.managed:
            manifest = f"{execution.output_location}-manifest.csv"
            self._put(manifest, "".join(f"{p}\n" for p in paths).encode(), "text/csv", execution.encryption)
            metadata = {"ColumnInfo": [column_info(c, t) for c, t in zip(result.columns, result.types,
                                                                          strict=True)]}
            self._put(f"{execution.output_location}.metadata", json.dumps(metadata).encode(), "application/json",
                      execution.encryption)
            execution.manifest_location = manifest
        execution.update_count = 0 if no_data else arrow.num_rows
        execution.result = QueryResult([], [], [])

    def _drop_table(self, execution: Execution, statement: exp.Expression) -> None:
        for table in statement.args.get("tables") or [statement.this]:
            database, name = table.db or execution.database, table.name
            try:
                self.clients.glue.delete_table(DatabaseName=database, Name=name)
            except Exception as exc:
                if error_code(exc) != "EntityNotFoundException":
                    raise
                if not statement.args.get("exists"):
                    raise QueryError(f"table {database}.{name} does not exist; Athena would reject it too",
                                     code="TABLE_NOT_FOUND", construct=f"{database}.{name}",
                                     athena_accepts=False) from None
        if not execution.managed:
            self._put(execution.output_location, b"", "text/plain", execution.encryption)
        execution.result = QueryResult([], [], [])

    # --- reading ----------------------------------------------------------------------------------

    def _get(self, execution_id: Any) -> Execution:
        with self._lock:
            found = self._executions.get(str(execution_id or ""))
        if found is None:
            raise invalid(f"QueryExecution {execution_id} was not found")
        return found

    def get_query_execution(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        return {"QueryExecution": self._get(params.get("QueryExecutionId")).describe()}

    def batch_get_query_execution(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("QueryExecutionIds") or []
        if not 1 <= len(ids) <= 50:
            raise invalid("QueryExecutionIds must name 1 to 50 executions")
        found, missing = [], []
        for execution_id in ids:
            with self._lock:
                execution = self._executions.get(execution_id)
            if execution is None:
                missing.append({"QueryExecutionId": execution_id, "ErrorCode": "INVALID_INPUT",
                                "ErrorMessage": f"QueryExecution {execution_id} was not found"})
            else:
                found.append(execution.describe())
        return {"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing}

    def list_query_executions(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        workgroup = params.get("WorkGroup") or "primary"
        limit = int(params.get("MaxResults") or LIST_MAX)
        if not 0 <= limit <= LIST_MAX:
            raise invalid(f"MaxResults must be between 0 and {LIST_MAX}")
        with self._lock:
            ids = [e.id for e in sorted(self._executions.values(), key=lambda e: -e.submitted)
                   if e.workgroup == workgroup]
        start = _offset(params.get("NextToken"))
        page = ids[start:start + (limit or LIST_MAX)]
        answer: dict[str, Any] = {"QueryExecutionIds": page}
        if start + len(page) < len(ids):
            answer["NextToken"] = str(start + len(page))
        return answer

    def stop_query_execution(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        self._cancel(self._get(params.get("QueryExecutionId")), "Query was cancelled by user")
        return {}

    def _cancel(self, execution: Execution, reason: str) -> None:
        with self._lock:
            if execution.state in FINAL:
                return
            execution.state, execution.completed, execution.reason = "CANCELLED", time.time(), reason
        threading.Thread(target=self._interrupt, args=(execution,), daemon=True).start()

    @staticmethod
    def _interrupt(execution: Execution, timeout: float = 10.0) -> None:
        """Interrupt DuckDB until the worker lets go: a query that had not begun yet is caught when it does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mirror = execution.mirror
            if mirror is None and execution.started is not None:
                return
            if mirror is not None:
                try:
                    mirror.interrupt()
                except duckdb.Error:  # closed meanwhile: the query is over
                    return
            time.sleep(0.02)

    def get_query_results(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        execution = self._get(params.get("QueryExecutionId"))
        if execution.state == "FAILED":
            raise invalid(f"Query did not finish successfully. Final query state: FAILED\n{execution.reason}",
                          AthenaErrorCode="INVALID_QUERY_STATE")
        if execution.state != "SUCCEEDED":
            raise invalid(f"Query has not yet finished. Current state: {execution.state}",
                          AthenaErrorCode="INVALID_QUERY_STATE")
        limit = int(params.get("MaxResults") or MAX_RESULTS)
        if not 1 <= limit <= MAX_RESULTS:
            raise invalid(f"MaxResults must be between 1 and {MAX_RESULTS}")
        result = execution.result or QueryResult([], [], [])
        # The rows a SELECT pages through are its column names, then its data rows: MaxResults counts the
        # header on the first page, and the token is a position in that sequence (never the header twice).
        header = int(execution.statement_type == "DML" and bool(result.columns))
        total = header + len(execution.text_rows)
        start = _offset(params.get("NextToken"))
        end = min(start + limit, total)
        rows: list[dict[str, Any]] = []
        if header and start == 0:
            rows.append({"Data": [{"VarCharValue": c} for c in result.columns]})
        for values in execution.text_rows[max(start - header, 0):max(end - header, 0)]:
            rows.append({"Data": [{} if v is None else {"VarCharValue": v} for v in values]})
        answer: dict[str, Any] = {
            "UpdateCount": execution.update_count,
            "ResultSet": {"Rows": rows, "ResultSetMetadata": {
                "ColumnInfo": [column_info(c, t) for c, t in zip(result.columns, result.types, strict=True)]}},
        }
        if end < total:
            answer["NextToken"] = str(end)
        return answer

    def get_query_runtime_statistics(self, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        execution = self._get(params.get("QueryExecutionId"))
        described = execution.describe()["Statistics"]
        rows = len(execution.text_rows) or execution.update_count
        return {"QueryRuntimeStatistics": {
            "Timeline": {k: described[k] for k in ("QueryQueueTimeInMillis", "ServicePreProcessingTimeInMillis",
                                                   "QueryPlanningTimeInMillis", "EngineExecutionTimeInMillis",
                                                   "ServiceProcessingTimeInMillis", "TotalExecutionTimeInMillis")},
            "Rows": {"InputRows": 0, "InputBytes": 0, "OutputBytes": 0, "OutputRows": rows},
        }}

    def wait(self, execution_id: str, timeout: float = 60.0) -> Execution:
        """Block until the execution is final (tests and the CLI's in-process use)."""
        deadline = time.monotonic() + timeout
        while True:
            execution = self._get(execution_id)
            if execution.state in FINAL or time.monotonic() > deadline:
                return execution
            time.sleep(0.02)

    # The actions this service answers itself (protocol.py, so the HTTP side knows them without this module).
    ACTIONS: ClassVar[dict[str, str]] = QUERY_ACTIONS

    def handle(self, action: str, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
        method = self.ACTIONS[action]
        return getattr(self, method)(headers, params)  # type: ignore[no-any-return]


def _offset(token: Any) -> int:
    if not token:
        return 0
    if not str(token).isdigit():
        raise invalid("NextToken is not valid; pass the token of the previous page")
    return int(str(token))
