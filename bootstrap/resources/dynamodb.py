"""The orders table: on-demand, encrypted, point-in-time recovery, Streams NEW_AND_OLD_IMAGES.

Waits for what AWS makes eventually consistent: the table ACTIVE, its stream ENABLED (a Pipe
cannot read a stream still ENABLING), and continuous backups available (UpdateContinuousBackups
right after CreateTable answers ContinuousBackupsUnavailableException for a while).
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateContinuousBackups.html
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from bootstrap.resources.base import State, missing
from bootstrap.spec import Resource
from common.aws import Clients, retrying, wait_until
from common.errors import TerminalError

BACKUPS_NOT_READY = frozenset({"ContinuousBackupsUnavailableException"})


class Table:
    def desired(self, res: Resource) -> State:
        p = res.params
        return {
            "KeySchema": p["KeySchema"],
            "BillingMode": p["BillingMode"],
            "StreamSpecification": p["StreamSpecification"],
            "PointInTimeRecovery": p["PointInTimeRecovery"],
        }

    def _describe(self, clients: Clients, name: str) -> dict[str, Any] | None:
        try:
            return clients.dynamodb.describe_table(TableName=name)["Table"]
        except ClientError as exc:
            if missing(exc, "ResourceNotFoundException"):
                return None
            raise

    def observe(self, clients: Clients, res: Resource) -> State | None:
        table = self._describe(clients, res.name)
        if table is None:
            return None
        backups = clients.dynamodb.describe_continuous_backups(TableName=res.name)
        pitr = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        return {
            "KeySchema": table["KeySchema"],
            "BillingMode": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
            "StreamSpecification": table.get("StreamSpecification", {"StreamEnabled": False}),
            "PointInTimeRecovery": pitr.get("PointInTimeRecoveryStatus") == "ENABLED",
        }

    def facts(self, clients: Clients, res: Resource) -> dict[str, Any]:
        table = self._describe(clients, res.name)
        return {"table_stream_arn": table["LatestStreamArn"]} if table and "LatestStreamArn" in table else {}

    def create(self, clients: Clients, res: Resource) -> None:
        p = res.params
        clients.dynamodb.create_table(
            TableName=p["TableName"],
            AttributeDefinitions=p["AttributeDefinitions"],
            KeySchema=p["KeySchema"],
            BillingMode=p["BillingMode"],
            StreamSpecification=p["StreamSpecification"],
            SSESpecification=p["SSESpecification"],
            Tags=[{"Key": k, "Value": v} for k, v in p["Tags"].items()],
        )
        clients.dynamodb.get_waiter("table_exists").wait(TableName=res.name)
        self._wait_stream(clients, res.name)
        self.update(clients, res, ["PointInTimeRecovery"])

    def _wait_stream(self, clients: Clients, name: str) -> None:
        arn = (self._describe(clients, name) or {}).get("LatestStreamArn")
        if not arn:
            return
        streams = clients.client("dynamodbstreams")
        wait_until(lambda: streams.describe_stream(StreamArn=arn)["StreamDescription"]["StreamStatus"] == "ENABLED",
                   f"the stream of table {name} to become ENABLED")

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        table = self._describe(clients, res.name)
        if table is None:
            return {}
        listed = clients.dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
        return {t["Key"]: t["Value"] for t in listed}

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        p = res.params
        if "KeySchema" in changed:
            raise TerminalError(f"table {res.name} has another key schema; destroy it or rename TABLE_NAME")
        if "BillingMode" in changed:
            clients.dynamodb.update_table(TableName=res.name, BillingMode=p["BillingMode"])
        if "StreamSpecification" in changed:
            clients.dynamodb.update_table(TableName=res.name, StreamSpecification=p["StreamSpecification"])
        if "PointInTimeRecovery" in changed:
            enable = retrying(attempts=10, base=1.0, cap=10.0, codes=BACKUPS_NOT_READY)(
                clients.dynamodb.update_continuous_backups
            )
            enable(
                TableName=res.name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": p["PointInTimeRecovery"]},
            )
        wait_until(lambda: (self._describe(clients, res.name) or {}).get("TableStatus") == "ACTIVE",
                   f"table {res.name} to become ACTIVE")

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.dynamodb.delete_table(TableName=res.name)
        clients.dynamodb.get_waiter("table_not_exists").wait(TableName=res.name)
