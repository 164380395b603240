"""The Athena workgroup: results go to our bucket, encrypted, users cannot override it, and a
query that would scan more than the per-query limit is cancelled.

https://docs.aws.amazon.com/athena/latest/ug/workgroups-settings-override.html
https://docs.aws.amazon.com/athena/latest/ug/workgroups-setting-control-limits-cloudwatch.html
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from bootstrap.iam import Arns
from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients


class WorkGroup(NoFacts):
    def desired(self, res: Resource) -> State:
        conf = res.params["Configuration"]
        return {
            "OutputLocation": conf["ResultConfiguration"]["OutputLocation"],
            "Encryption": conf["ResultConfiguration"].get("EncryptionConfiguration"),
            "Enforce": conf["EnforceWorkGroupConfiguration"],
            "ScanLimit": conf.get("BytesScannedCutoffPerQuery"),
        }

    def _get(self, clients: Clients, name: str) -> dict[str, Any] | None:
        try:
            found = clients.athena.get_work_group(WorkGroup=name)
        except ClientError as exc:
            if missing(exc, "InvalidRequestException", "ResourceNotFoundException"):
                return None
            raise
        return found.get("WorkGroup")  # moto answers an empty body for an unknown workgroup

    def observe(self, clients: Clients, res: Resource) -> State | None:
        group = self._get(clients, res.name)
        if group is None:
            return None
        conf = group.get("Configuration", {})
        result = conf.get("ResultConfiguration", {})
        return {
            "OutputLocation": result.get("OutputLocation"),
            "Encryption": result.get("EncryptionConfiguration"),
            "Enforce": conf.get("EnforceWorkGroupConfiguration", False),
            "ScanLimit": conf.get("BytesScannedCutoffPerQuery"),
        }

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        arn = Arns.build(clients.settings, clients.account_id).of("athena_workgroup", res.name)
        listed = clients.athena.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
        return {t["Key"]: t.get("Value", "") for t in listed}

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
                "BytesScannedCutoffPerQuery": conf["BytesScannedCutoffPerQuery"],
            },
        )

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.athena.delete_work_group(WorkGroup=res.name, RecursiveDeleteOption=True)
