"""What the endpoint's HTTP side needs before the query engine loads: Athena's error shape and the actions
the endpoint answers itself.

Kept apart from service.py (DuckDB, pyarrow, the query core: about a second of CPU to import) so the
endpoint answers its health check, and passes every other action to the emulator, without loading them:
`make up` starts the endpoint while the bootstrap runs, on the same cores.
"""

from __future__ import annotations

from typing import Any

# The actions the endpoint answers itself rather than passing them to the emulator, and the AthenaService
# method of each. GetWorkGroup (the emulator's workgroup, normalised) is answered without building the service
# (server.py, workgroups.py); the service keeps it for the result settings of each query.
QUERY_ACTIONS: dict[str, str] = {
    "StartQueryExecution": "start_query_execution",
    "GetQueryExecution": "get_query_execution",
    "BatchGetQueryExecution": "batch_get_query_execution",
    "ListQueryExecutions": "list_query_executions",
    "StopQueryExecution": "stop_query_execution",
    "GetQueryResults": "get_query_results",
    "GetQueryRuntimeStatistics": "get_query_runtime_statistics",
    "GetWorkGroup": "get_work_group",
}


class ApiError(Exception):
    """An Athena API error: __type, message, HTTP status, and Athena's extra members."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra


def invalid(message: str, **extra: Any) -> ApiError:
    return ApiError("InvalidRequestException", message, **extra)
