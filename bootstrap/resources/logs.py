"""CloudWatch log groups with a retention, so Lambda and Firehose errors do not pile up forever."""

from __future__ import annotations

from bootstrap.resources.base import NoFacts, State
from bootstrap.spec import Resource
from common.aws import Clients


class LogGroup(NoFacts):
    def desired(self, res: Resource) -> State:
        return {"retentionInDays": res.params["retentionInDays"]}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        groups = clients.logs.describe_log_groups(logGroupNamePrefix=res.name)["logGroups"]
        match = [g for g in groups if g["logGroupName"] == res.name]
        return {"retentionInDays": match[0].get("retentionInDays")} if match else None

    def create(self, clients: Clients, res: Resource) -> None:
        clients.logs.create_log_group(logGroupName=res.name, tags=res.params["tags"])
        self.update(clients, res, ["retentionInDays"])

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        clients.logs.put_retention_policy(logGroupName=res.name, retentionInDays=res.params["retentionInDays"])

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.logs.delete_log_group(logGroupName=res.name)
