"""CloudWatch log groups with a retention, so Lambda and Firehose errors do not pile up forever.

Firehose writes its delivery errors to the log stream its request names; through the API that
stream is ours to create (the console creates it for you).
https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-cwl
https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/Working-with-log-groups-and-streams.html
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from bootstrap.iam import Arns
from bootstrap.resources.base import NoFacts, State
from bootstrap.spec import Resource
from common.aws import Clients, error_code


class LogGroup(NoFacts):
    def desired(self, res: Resource) -> State:
        return {"retentionInDays": res.params["retentionInDays"],
                "logStreams": sorted(res.params.get("logStreams", []))}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        groups = clients.logs.describe_log_groups(logGroupNamePrefix=res.name)["logGroups"]
        match = [g for g in groups if g["logGroupName"] == res.name]
        if not match:
            return None
        present = []
        for stream in res.params.get("logStreams", []):
            found = clients.logs.describe_log_streams(logGroupName=res.name, logStreamNamePrefix=stream)["logStreams"]
            if any(s["logStreamName"] == stream for s in found):
                present.append(stream)
        return {"retentionInDays": match[0].get("retentionInDays"), "logStreams": sorted(present)}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        arn = Arns.build(clients.settings, clients.account_id).log_group(res.name)
        return dict(clients.logs.list_tags_for_resource(resourceArn=arn).get("tags", {}))

    def create(self, clients: Clients, res: Resource) -> None:
        clients.logs.create_log_group(logGroupName=res.name, tags=res.params["tags"])
        self.update(clients, res, ["retentionInDays", "logStreams"])

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        if "retentionInDays" in changed:
            clients.logs.put_retention_policy(logGroupName=res.name, retentionInDays=res.params["retentionInDays"])
        if "logStreams" in changed:
            for stream in res.params.get("logStreams", []):
                try:
                    clients.logs.create_log_stream(logGroupName=res.name, logStreamName=stream)
                except ClientError as exc:
                    if error_code(exc) != "ResourceAlreadyExistsException":
                        raise

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.logs.delete_log_group(logGroupName=res.name)
