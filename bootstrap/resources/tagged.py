"""Pipe, delivery stream and crawler on real AWS: created from the spec, tracked by a spec hash tag.

Their describe calls return many derived fields, so instead of comparing each one, the request
we sent is hashed into a `spec-sha` tag: a changed spec means an update, an equal one means none.
Each waits for the service's own notion of ready (pipe RUNNING, delivery stream ACTIVE) and
turns a failed state into one line with AWS's reason; a role created moments ago is given time
to propagate first (propagation.py). A resource left in a failed state is a change whatever its
tag says (the tag is written before the outcome is known), so the next deploy repairs it: one whose
creation failed is deleted and created again, any other is updated.
https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_CreatePipe.html
https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html
https://docs.aws.amazon.com/glue/latest/webapi/API_CreateCrawler.html
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from bootstrap.iam import Arns
from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.resources.propagation import retry_while_role_propagates, wait_for_role
from bootstrap.spec import Resource, update_pipe_request
from common.aws import Clients, error_code, wait_until
from common.errors import TerminalError

SPEC_TAG = "spec-sha"
PIPE_READY = ("RUNNING", "STOPPED")
FIREHOSE_FAILED = ("CREATING_FAILED", "DELETING_FAILED")
# UpdateDestination keeps every field it is not given (API_UpdateDestination.html): what the spec no longer
# asks for is turned off explicitly, or the stream goes on encrypting with a key its role may no longer use.
DESTINATION_OFF = {
    "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
    "DataFormatConversionConfiguration": {"Enabled": False},
    "FileExtension": "",
}


def spec_hash(params: dict[str, Any]) -> str:
    body = {k: v for k, v in params.items() if k not in ("Tags",)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _arn(clients: Clients, kind: str, name: str) -> str:
    return Arns.build(clients.settings, clients.account_id).of(kind, name)


class Pipe(NoFacts):
    def desired(self, res: Resource) -> State:
        return {SPEC_TAG: spec_hash(res.params)}

    def _describe(self, clients: Clients, name: str) -> dict[str, Any] | None:
        try:
            return clients.pipes.describe_pipe(Name=name)
        except ClientError as exc:
            if missing(exc, "NotFoundException"):
                return None
            raise

    def observe(self, clients: Clients, res: Resource) -> State | None:
        pipe = self._describe(clients, res.name)
        if pipe is None:
            return None
        state = pipe.get("CurrentState", "")
        if state.endswith("_FAILED"):  # never the desired hash: the plan shows it, apply repairs it
            return {SPEC_TAG: f"{state}: {pipe.get('StateReason', 'no reason given')}"}
        return {SPEC_TAG: pipe.get("Tags", {}).get(SPEC_TAG)}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        return dict((self._describe(clients, res.name) or {}).get("Tags", {}))

    def create(self, clients: Clients, res: Resource) -> None:
        p = dict(res.params)
        p["Tags"] = {**p["Tags"], SPEC_TAG: spec_hash(res.params)}
        wait_for_role(clients, p["RoleArn"])
        retry_while_role_propagates(lambda: clients.pipes.create_pipe(**p), clients, p["RoleArn"],
                                    frozenset({"ValidationException"}))
        self._wait(clients, res.name)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        if (self._describe(clients, res.name) or {}).get("CurrentState") == "CREATE_FAILED":
            self.delete(clients, res)
            self.create(clients, res)
            return
        p = update_pipe_request(res.params)
        wait_for_role(clients, p["RoleArn"])
        clients.pipes.update_pipe(**p)
        arn = clients.pipes.describe_pipe(Name=res.name)["Arn"]
        clients.pipes.tag_resource(resourceArn=arn, tags={SPEC_TAG: spec_hash(res.params)})
        self._wait(clients, res.name)

    def _wait(self, clients: Clients, name: str) -> None:
        def ready() -> bool:
            pipe = clients.pipes.describe_pipe(Name=name)
            state = pipe.get("CurrentState", "")
            if state.endswith("_FAILED"):
                raise TerminalError(f"pipe {name} is {state}: {pipe.get('StateReason', 'no reason given')}")
            return state in PIPE_READY

        wait_until(ready, f"pipe {name} to start", timeout=300, interval=5)

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.pipes.delete_pipe(Name=res.name)
        wait_until(lambda: self._describe(clients, res.name) is None, f"pipe {res.name} to be deleted",
                   timeout=300, interval=5)


class DeliveryStream(NoFacts):
    def desired(self, res: Resource) -> State:
        return {SPEC_TAG: spec_hash(res.params)}

    def _describe(self, clients: Clients, name: str) -> dict[str, Any] | None:
        try:
            return clients.firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        except ClientError as exc:
            if missing(exc, "ResourceNotFoundException"):
                return None
            raise

    def observe(self, clients: Clients, res: Resource) -> State | None:
        desc = self._describe(clients, res.name)
        if desc is None:
            return None
        if desc.get("DeliveryStreamStatus") in FIREHOSE_FAILED:  # never the desired hash: apply repairs it
            return {SPEC_TAG: desc["DeliveryStreamStatus"]}
        return {SPEC_TAG: self.tags(clients, res).get(SPEC_TAG)}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        listed = clients.firehose.list_tags_for_delivery_stream(DeliveryStreamName=res.name)["Tags"]
        return {t["Key"]: t.get("Value", "") for t in listed}

    def create(self, clients: Clients, res: Resource) -> None:
        p = dict(res.params)
        p["Tags"] = [*p["Tags"], {"Key": SPEC_TAG, "Value": spec_hash(res.params)}]
        role = p["KinesisStreamSourceConfiguration"]["RoleARN"]
        wait_for_role(clients, role)
        retry_while_role_propagates(lambda: clients.firehose.create_delivery_stream(**p), clients, role,
                                    frozenset({"InvalidArgumentException"}))
        self._wait(clients, res.name)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        desc = self._describe(clients, res.name) or {}
        if desc.get("DeliveryStreamStatus") in FIREHOSE_FAILED:  # a failed stream can only be deleted
            self.delete(clients, res)
            self.create(clients, res)
            return
        current = desc["Destinations"][0].get("ExtendedS3DestinationDescription", {})
        destination = {**{k: v for k, v in DESTINATION_OFF.items() if k in current},
                       **res.params["ExtendedS3DestinationConfiguration"]}
        wait_for_role(clients, destination["RoleARN"])
        clients.firehose.update_destination(
            DeliveryStreamName=res.name,
            CurrentDeliveryStreamVersionId=desc["VersionId"],
            DestinationId=desc["Destinations"][0]["DestinationId"],
            ExtendedS3DestinationUpdate=destination,
        )
        clients.firehose.tag_delivery_stream(
            DeliveryStreamName=res.name, Tags=[{"Key": SPEC_TAG, "Value": spec_hash(res.params)}]
        )
        self._wait(clients, res.name)

    def _wait(self, clients: Clients, name: str) -> None:
        def ready() -> bool:
            desc = self._describe(clients, name) or {}
            status = desc.get("DeliveryStreamStatus", "")
            if status in FIREHOSE_FAILED:
                reason = desc.get("FailureDescription", {}).get("Details", "no reason given")
                raise TerminalError(f"delivery stream {name} is {status}: {reason}")
            return status == "ACTIVE"

        wait_until(ready, f"delivery stream {name} to become ACTIVE", timeout=300, interval=5)

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.firehose.delete_delivery_stream(DeliveryStreamName=res.name, AllowForceDelete=True)
        wait_until(lambda: self._describe(clients, res.name) is None,
                   f"delivery stream {res.name} to be deleted", timeout=300, interval=5)


class Crawler(NoFacts):
    def desired(self, res: Resource) -> State:
        return {SPEC_TAG: spec_hash(res.params)}

    def _get(self, clients: Clients, name: str) -> dict[str, Any] | None:
        try:
            return clients.glue.get_crawler(Name=name)["Crawler"]
        except ClientError as exc:
            if missing(exc, "EntityNotFoundException"):
                return None
            raise

    def observe(self, clients: Clients, res: Resource) -> State | None:
        if self._get(clients, res.name) is None:
            return None
        return {SPEC_TAG: self.tags(clients, res).get(SPEC_TAG)}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        return dict(clients.glue.get_tags(ResourceArn=_arn(clients, "glue_crawler", res.name)).get("Tags", {}))

    def create(self, clients: Clients, res: Resource) -> None:
        p = dict(res.params)
        p["Tags"] = {**p["Tags"], SPEC_TAG: spec_hash(res.params)}
        wait_for_role(clients, p["Role"])
        retry_while_role_propagates(lambda: clients.glue.create_crawler(**p), clients, p["Role"],
                                    frozenset({"InvalidInputException"}))

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        live = self._get(clients, res.name) or {}
        clients.glue.update_crawler(**{k: v for k, v in res.params.items() if k != "Tags"})
        if "Schedule" not in res.params and live.get("Schedule", {}).get("State") == "SCHEDULED":
            clients.glue.stop_crawler_schedule(CrawlerName=res.name)  # the spec no longer asks for one
        clients.glue.tag_resource(ResourceArn=_arn(clients, "glue_crawler", res.name),
                                  TagsToAdd={SPEC_TAG: spec_hash(res.params)})

    def delete(self, clients: Clients, res: Resource) -> None:
        """A running crawl is stopped first: Glue refuses to delete a crawler mid-run."""
        if (self._get(clients, res.name) or {}).get("State") == "RUNNING":
            try:
                clients.glue.stop_crawler(Name=res.name)
            except ClientError as exc:
                if error_code(exc) != "CrawlerNotRunningException":
                    raise
            wait_until(lambda: (self._get(clients, res.name) or {}).get("State", "READY") == "READY",
                       f"crawler {res.name} to stop", timeout=300, interval=5)
        clients.glue.delete_crawler(Name=res.name)
