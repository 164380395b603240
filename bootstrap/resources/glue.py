"""The Glue database that holds the lake's table (the crawler creates the table itself)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients


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

    def create(self, clients: Clients, res: Resource) -> None:
        clients.glue.create_database(DatabaseInput={"Name": res.name,
                                                    "Description": "sales-orders CDC lake"})

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        """Nothing managed can drift on a database beyond its name."""

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.glue.delete_database(Name=res.name)
