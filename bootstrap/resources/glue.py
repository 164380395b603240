"""The Glue database of the lake, and on aws the lake's table itself (declared, not crawled).

On the emulated targets the local crawler creates the table from the objects. On aws the
bootstrap creates it from the row contract (lake/glue_schema.py, the one module that owns the
table), because Firehose's Parquet conversion reads its schema before the first object exists;
the crawler then only adds partitions.
Columns a user adds to the table (the console, UpdateTable) are theirs: Firehose converts with
them, so the plan neither reports them as drift nor removes them; an update keeps them after the
declared columns. A declared column that is missing or retyped is drift, and is restored.
Glue tables take no tags: the project's tags ride in the table's parameters.
https://docs.aws.amazon.com/glue/latest/webapi/API_CreateTable.html
https://docs.aws.amazon.com/glue/latest/webapi/API_UpdateTable.html
https://docs.aws.amazon.com/glue/latest/dg/monitor-tags.html
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from bootstrap.iam import Arns
from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from bootstrap.spec import tags as project_tags
from common.aws import Clients
from lake.glue_schema import table_columns, with_columns


class Database(NoFacts):
    def desired(self, res: Resource) -> State:
        return {"Name": res.name}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            return {"Name": clients.glue.get_database(Name=res.name)["Database"]["Name"]}
        except ClientError as exc:
            if missing(exc, "EntityNotFoundException"):
                return None
            raise

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        arn = Arns.build(clients.settings, clients.account_id).of("glue_database", res.name)
        return dict(clients.glue.get_tags(ResourceArn=arn).get("Tags", {}))

    def create(self, clients: Clients, res: Resource) -> None:
        p = res.params
        database = p.get("DatabaseInput", {"Name": res.name, "Description": "sales-orders CDC lake"})
        clients.glue.create_database(DatabaseInput=database, Tags=p.get("Tags", {}))

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        """Nothing managed can drift on a database beyond its name."""

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.glue.delete_database(Name=res.name)


def user_columns(live: dict[str, Any], declared: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Pure: the columns of the live table that the declared TableInput does not have (added by a user)."""
    names = {name for name, _ in table_columns(declared)}
    return tuple((name, kind) for name, kind in table_columns(live) if name not in names)


def table_view(table: dict[str, Any], parameter_keys: set[str]) -> State:
    """Pure: the managed fields of a TableInput or a GetTable answer, in one comparable shape.

    Parameters are compared on the keys the spec sets plus any projection keys found live, so
    turning partition projection off shows as a change; keys others add (the crawler's
    bookkeeping, Athena's statistics) are not ours and are ignored.
    """
    sd = table.get("StorageDescriptor", {})
    live = table.get("Parameters", {})
    keys = parameter_keys | {k for k in live if k.startswith(("projection.", "storage.location.template"))}
    return {
        "TableType": table.get("TableType"),
        "Parameters": {k: live.get(k) for k in sorted(keys)},
        "Columns": [{"Name": c["Name"], "Type": c["Type"]} for c in sd.get("Columns", [])],
        "Location": sd.get("Location"),
        "InputFormat": sd.get("InputFormat"),
        "OutputFormat": sd.get("OutputFormat"),
        "SerDe": sd.get("SerdeInfo", {}).get("SerializationLibrary"),
        "PartitionKeys": [{"Name": c["Name"], "Type": c["Type"]} for c in table.get("PartitionKeys", [])],
    }


class Table(NoFacts):
    def _keys(self, res: Resource) -> set[str]:
        return set(res.params["TableInput"].get("Parameters", {}))

    def _database(self, clients: Clients, res: Resource) -> str:
        return str(res.params.get("DatabaseName") or clients.settings.glue_database)

    def _get(self, clients: Clients, res: Resource) -> dict[str, Any] | None:
        try:
            return clients.glue.get_table(DatabaseName=self._database(clients, res), Name=res.name)["Table"]
        except ClientError as exc:
            if missing(exc, "EntityNotFoundException"):
                return None
            raise

    def desired(self, res: Resource) -> State:
        return table_view(res.params["TableInput"], self._keys(res))

    def observe(self, clients: Clients, res: Resource) -> State | None:
        table = self._get(clients, res)
        if table is None:
            return None
        view = table_view(table, self._keys(res))
        added = {name for name, _ in user_columns(table, res.params["TableInput"])}
        view["Columns"] = [c for c in view["Columns"] if c["Name"].lower() not in added]
        return view

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        parameters = (self._get(clients, res) or {}).get("Parameters", {})
        return {k: parameters[k] for k in project_tags(clients.settings) if k in parameters}

    def create(self, clients: Clients, res: Resource) -> None:
        clients.glue.create_table(DatabaseName=res.params["DatabaseName"], TableInput=res.params["TableInput"])

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        declared = res.params["TableInput"]
        live = self._get(clients, res) or {}
        added = user_columns(live, declared)
        table = with_columns(declared, table_columns(declared) + added) if added else declared
        clients.glue.update_table(DatabaseName=res.params["DatabaseName"], TableInput=table)

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.glue.delete_table(DatabaseName=self._database(clients, res), Name=res.name)
