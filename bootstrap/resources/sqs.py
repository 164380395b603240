"""SQS queues: the pipe's dead-letter queue, a standard queue with SSE-SQS and 14 days' retention.

SQS names a queue by its URL, which GetQueueUrl gives for the name. Only the attributes the spec
asks for are managed (others, e.g. a policy added by hand, are left alone): a drifted one is set
back with SetQueueAttributes. The project's tags are added with TagQueue when missing; tags others
add are kept. A queue is gone only about 60 s after DeleteQueue, and its name cannot be reused
for 60 s: delete waits until GetQueueUrl no longer finds it, and create retries while SQS says
the name was deleted recently (`make destroy-aws` then `make deploy-aws`).
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteQueue.html
"""

from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients, error_code, wait_until

# SQS speaks JSON now but keeps its query-era error codes: botocore may report either spelling.
NOT_FOUND_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
DELETED_RECENTLY_CODES = ("AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently")
NAME_REUSE_WAIT_S = 75.0  # SQS: "wait at least 60 seconds before creating a queue with the same name"
RETRY_INTERVAL_S = 5.0


class Queue(NoFacts):
    def desired(self, res: Resource) -> State:
        """One field per managed attribute (a drifted one is named in the plan), plus the project's tags."""
        return {**res.params["Attributes"], "Tags": res.params["tags"]}

    def url(self, clients: Clients, name: str) -> str | None:
        try:
            return clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if missing(exc, *NOT_FOUND_CODES):
                return None
            raise

    def observe(self, clients: Clients, res: Resource) -> State | None:
        url = self.url(clients, res.name)
        if url is None:
            return None
        names = list(res.params["Attributes"])
        live = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {})
        tags = clients.sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        return {**{n: live.get(n) for n in names}, "Tags": {k: tags.get(k) for k in res.params["tags"]}}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        url = self.url(clients, res.name)
        return {} if url is None else dict(clients.sqs.list_queue_tags(QueueUrl=url).get("Tags", {}))

    def create(self, clients: Clients, res: Resource, sleep: Callable[[float], None] = time.sleep,
               now: Callable[[], float] = time.monotonic) -> None:
        p = res.params
        deadline = now() + NAME_REUSE_WAIT_S
        while True:
            try:
                clients.sqs.create_queue(QueueName=res.name, Attributes=p["Attributes"], tags=p["tags"])
                return
            except ClientError as exc:
                if error_code(exc) not in DELETED_RECENTLY_CODES or now() >= deadline:
                    raise
            sleep(RETRY_INTERVAL_S)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        url = clients.sqs.get_queue_url(QueueName=res.name)["QueueUrl"]
        drifted = {k: v for k, v in res.params["Attributes"].items() if k in changed}
        if drifted:
            clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=drifted)
        if "Tags" in changed:
            clients.sqs.tag_queue(QueueUrl=url, Tags=res.params["tags"])

    def delete(self, clients: Clients, res: Resource) -> None:
        """By name; a queue already gone (found by a tag lookup that lags) is nothing to delete."""
        url = self.url(clients, res.name)
        if url is None:
            return
        try:
            clients.sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if not missing(exc, *NOT_FOUND_CODES):
                raise
        wait_until(lambda: self.url(clients, res.name) is None, f"SQS queue {res.name} to be deleted",
                   timeout=120, interval=5)
