"""Pipe, delivery stream and crawler on real AWS: created from the spec, tracked by a spec hash tag.

Their describe calls return many derived fields, so instead of comparing each one, the request
we sent is hashed into a `spec-sha` tag: a changed spec means an update, an equal one means none.
https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_CreatePipe.html
https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html
https://docs.aws.amazon.com/glue/latest/webapi/API_CreateCrawler.html
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients, wait_until

SPEC_TAG = "spec-sha"


def spec_hash(params: dict[str, Any]) -> str:
    body = {k: v for k, v in params.items() if k not in ("Tags",)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Pipe(NoFacts):
    def desired(self, res: Resource) -> State:
        return {SPEC_TAG: spec_hash(res.params)}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            pipe = clients.pipes.describe_pipe(Name=res.name)
        except ClientError as exc:
            if missing(exc, "NotFoundException"):
                return None
            raise
        return {SPEC_TAG: pipe.get("Tags", {}).get(SPEC_TAG)}

    def create(self, clients: Clients, res: Resource) -> None:
        p = dict(res.params)
        p["Tags"] = {**p["Tags"], SPEC_TAG: spec_hash(res.params)}
        clients.pipes.create_pipe(**p)
        self._wait(clients, res.name)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        p = {k: v for k, v in res.params.items() if k not in ("Tags", "Source")}
        clients.pipes.update_pipe(**p)
        arn = clients.pipes.describe_pipe(Name=res.name)["Arn"]
        clients.pipes.tag_resource(resourceArn=arn, tags={SPEC_TAG: spec_hash(res.params)})
        self._wait(clients, res.name)

    def _wait(self, clients: Clients, name: str) -> None:
        wait_until(
            lambda: clients.pipes.describe_pipe(Name=name)["CurrentState"] in ("RUNNING", "STOPPED"),
            f"pipe {name} to start", timeout=300, interval=5,
        )

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.pipes.delete_pipe(Name=res.name)


class DeliveryStream(NoFacts):
    def desired(self, res: Resource) -> State:
        return {SPEC_TAG: spec_hash(res.params)}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            clients.firehose.describe_delivery_stream(DeliveryStreamName=res.name)
        except ClientError as exc:
            if missing(exc, "ResourceNotFoundException"):
                return None
            raise
        tags = clients.firehose.list_tags_for_delivery_stream(DeliveryStreamName=res.name)["Tags"]
        return {SPEC_TAG: {t["Key"]: t.get("Value") for t in tags}.get(SPEC_TAG)}

    def create(self, clients: Clients, res: Resource) -> None:
        p = dict(res.params)
        p["Tags"] = [*p["Tags"], {"Key": SPEC_TAG, "Value": spec_hash(res.params)}]
        clients.firehose.create_delivery_stream(**p)
        self._wait(clients, res.name)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        desc = clients.firehose.describe_delivery_stream(DeliveryStreamName=res.name)["DeliveryStreamDescription"]
        clients.firehose.update_destination(
            DeliveryStreamName=res.name,
            CurrentDeliveryStreamVersionId=desc["VersionId"],
            DestinationId=desc["Destinations"][0]["DestinationId"],
            ExtendedS3DestinationUpdate=res.params["ExtendedS3DestinationConfiguration"],
        )
        clients.firehose.tag_delivery_stream(
            DeliveryStreamName=res.name, Tags=[{"Key": SPEC_TAG, "Value": spec_hash(res.params)}]
        )

    def _wait(self, clients: Clients, name: str) -> None:
        wait_until(
            lambda: clients.firehose.describe_delivery_stream(DeliveryStreamName=name)
            ["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE",
            f"delivery stream {name} to become ACTIVE", timeout=300, interval=5,
        )

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.firehose.delete_delivery_stream(DeliveryStreamName=res.name, AllowForceDelete=True)


class Crawler(NoFacts):
    def desired(self, res: Resource) -> State:
        return {SPEC_TAG: spec_hash(res.params)}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            clients.glue.get_crawler(Name=res.name)
        except ClientError as exc:
            if missing(exc, "EntityNotFoundException"):
                return None
            raise
        arn = f"arn:aws:glue:{clients.settings.region}:{clients.account_id}:crawler/{res.name}"
        return {SPEC_TAG: clients.glue.get_tags(ResourceArn=arn).get("Tags", {}).get(SPEC_TAG)}

    def create(self, clients: Clients, res: Resource) -> None:
        p = dict(res.params)
        p["Tags"] = {**p["Tags"], SPEC_TAG: spec_hash(res.params)}
        clients.glue.create_crawler(**p)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        clients.glue.update_crawler(**{k: v for k, v in res.params.items() if k != "Tags"})
        arn = f"arn:aws:glue:{clients.settings.region}:{clients.account_id}:crawler/{res.name}"
        clients.glue.tag_resource(ResourceArn=arn, TagsToAdd={SPEC_TAG: spec_hash(res.params)})

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.glue.delete_crawler(Name=res.name)
