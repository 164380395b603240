"""The CDC stream: provisioned shards, KMS encryption with the AWS-managed key.

https://docs.aws.amazon.com/streams/latest/dev/server-side-encryption.html
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients, wait_until


class Stream(NoFacts):
    def desired(self, res: Resource) -> State:
        return {"ShardCount": res.params["ShardCount"], "Encryption": res.params["Encryption"]["EncryptionType"]}

    def _summary(self, clients: Clients, name: str) -> dict | None:
        try:
            return clients.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        except ClientError as exc:
            if missing(exc, "ResourceNotFoundException"):
                return None
            raise

    def observe(self, clients: Clients, res: Resource) -> State | None:
        summary = self._summary(clients, res.name)
        if summary is None:
            return None
        return {"ShardCount": summary["OpenShardCount"], "Encryption": summary.get("EncryptionType", "NONE")}

    def _wait_active(self, clients: Clients, name: str) -> None:
        wait_until(lambda: (self._summary(clients, name) or {}).get("StreamStatus") == "ACTIVE",
                   f"Kinesis stream {name} to become ACTIVE")

    def create(self, clients: Clients, res: Resource) -> None:
        p = res.params
        clients.kinesis.create_stream(
            StreamName=res.name, ShardCount=p["ShardCount"], StreamModeDetails=p["StreamModeDetails"],
            Tags=p["Tags"],
        )
        self._wait_active(clients, res.name)
        self._ensure_tags(clients, res)
        self.update(clients, res, ["Encryption"])

    def _ensure_tags(self, clients: Clients, res: Resource) -> None:
        """Tags given to CreateStream are not kept by every implementation (moto drops them): add what is missing."""
        absent = {k: v for k, v in res.params["Tags"].items() if self.tags(clients, res).get(k) != v}
        if absent:
            clients.kinesis.add_tags_to_stream(StreamName=res.name, Tags=absent)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        p = res.params
        if "ShardCount" in changed:
            clients.kinesis.update_shard_count(
                StreamName=res.name, TargetShardCount=p["ShardCount"], ScalingType="UNIFORM_SCALING"
            )
            self._wait_active(clients, res.name)
        if "Encryption" in changed:
            clients.kinesis.start_stream_encryption(
                StreamName=res.name, EncryptionType=p["Encryption"]["EncryptionType"],
                KeyId=p["Encryption"]["KeyId"],
            )
            self._wait_active(clients, res.name)

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        listed = clients.kinesis.list_tags_for_stream(StreamName=res.name).get("Tags", [])
        return {t["Key"]: t.get("Value", "") for t in listed}

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.kinesis.delete_stream(StreamName=res.name, EnforceConsumerDeletion=True)
        wait_until(lambda: self._summary(clients, res.name) is None, f"Kinesis stream {res.name} to be deleted")
