"""The Athena workgroup: results go to our bucket, encrypted, and users cannot override it.

https://docs.aws.amazon.com/athena/latest/ug/workgroups-settings-override.html
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients


class WorkGroup(NoFacts):
    def desired(self, res: Resource) -> State:
        conf = res.params["Configuration"]
        return {
            "OutputLocation": conf["ResultConfiguration"]["OutputLocation"],
            "Enforce": conf["EnforceWorkGroupConfiguration"],
        }

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            conf = clients.athena.get_work_group(WorkGroup=res.name)["WorkGroup"].get("Configuration", {})
        except ClientError as exc:
            if missing(exc, "InvalidRequestException", "ResourceNotFoundException"):
                return None
            raise
        return {
            "OutputLocation": conf.get("ResultConfiguration", {}).get("OutputLocation"),
            "Enforce": conf.get("EnforceWorkGroupConfiguration", False),
        }

    def create(self, clients: Clients, res: Resource) -> None:
        p = res.params
        clients.athena.create_work_group(Name=res.name, Configuration=p["Configuration"], Tags=p["Tags"])

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        conf = res.params["Configuration"]
        clients.athena.update_work_group(
            WorkGroup=res.name,
            ConfigurationUpdates={
                "ResultConfigurationUpdates": conf["ResultConfiguration"],
                "EnforceWorkGroupConfiguration": conf["EnforceWorkGroupConfiguration"],
                "PublishCloudWatchMetricsEnabled": conf["PublishCloudWatchMetricsEnabled"],
            },
        )

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.athena.delete_work_group(WorkGroup=res.name, RecursiveDeleteOption=True)
