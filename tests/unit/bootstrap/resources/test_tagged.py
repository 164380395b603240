"""The pipe and the delivery stream on `aws`, against in-memory stand-ins of the two APIs: a resource left in a
failed state is repaired by the next deploy (never "no change"), and an update turns off what the new spec
no longer asks for (UpdateDestination keeps every field it is not given)."""

from __future__ import annotations

from typing import Any

import pytest

import bootstrap.resources.tagged as tagged
from bootstrap.spec import desired_resources
from common.config import load_settings

ACCOUNT = "123456789012"


def resource(kind: str, **env: str) -> Any:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": "eu-west-1", **env})
    return {r.kind: r for r in desired_resources(settings, ACCOUNT)}[kind]


class FakePipes:
    def __init__(self, state: str, tag: str) -> None:
        self.pipe: dict[str, Any] | None = {"Arn": "arn:pipe", "CurrentState": state, "StateReason": "no access",
                                            "Tags": {tagged.SPEC_TAG: tag}}
        self.calls: list[str] = []

    def describe_pipe(self, Name: str) -> dict[str, Any]:
        if self.pipe is None:
            raise tagged.ClientError({"Error": {"Code": "NotFoundException"}}, "DescribePipe")
        return self.pipe

    def delete_pipe(self, Name: str) -> None:
        self.calls.append("delete")
        self.pipe = None

    def create_pipe(self, **params: Any) -> None:
        self.calls.append("create")
        self.pipe = {"Arn": "arn:pipe", "CurrentState": "RUNNING", "Tags": params["Tags"]}


class FakeFirehose:
    def __init__(self, status: str, tag: str, destination: dict[str, Any] | None = None) -> None:
        self.stream: dict[str, Any] | None = {
            "DeliveryStreamStatus": status, "VersionId": "7",
            "Destinations": [{"DestinationId": "d-1", "ExtendedS3DestinationDescription": destination or {}}]}
        self.tag, self.calls, self.updates = tag, [], []  # type: ignore[var-annotated]

    def describe_delivery_stream(self, DeliveryStreamName: str) -> dict[str, Any]:
        if self.stream is None:
            raise tagged.ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "DescribeDeliveryStream")
        return {"DeliveryStreamDescription": self.stream}

    def list_tags_for_delivery_stream(self, DeliveryStreamName: str) -> dict[str, Any]:
        return {"Tags": [{"Key": tagged.SPEC_TAG, "Value": self.tag}]}

    def delete_delivery_stream(self, DeliveryStreamName: str, AllowForceDelete: bool) -> None:
        self.calls.append("delete")
        self.stream = None

    def create_delivery_stream(self, **params: Any) -> None:
        self.calls.append("create")
        self.stream = {"DeliveryStreamStatus": "ACTIVE"}

    def update_destination(self, **params: Any) -> None:
        self.updates.append(params)

    def tag_delivery_stream(self, **params: Any) -> None:
        pass


class Clients:
    def __init__(self, pipes: Any = None, firehose: Any = None) -> None:
        self.pipes, self.firehose = pipes, firehose


@pytest.fixture(autouse=True)
def roles_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagged, "wait_for_role", lambda clients, arn: None)
    monkeypatch.setattr(tagged, "retry_while_role_propagates", lambda call, clients, arn, codes: call())


@pytest.mark.parametrize("state", ["CREATE_FAILED", "UPDATE_FAILED", "START_FAILED"])
def test_a_pipe_left_failed_is_a_change_whatever_its_tag_says(state: str) -> None:
    res = resource("pipe")
    pipes = FakePipes(state, tagged.spec_hash(res.params))  # the tag is written before the outcome is known
    handler = tagged.Pipe()
    assert handler.observe(Clients(pipes), res) != handler.desired(res)


def test_a_pipe_whose_creation_failed_is_deleted_and_created_again() -> None:
    res = resource("pipe")
    pipes = FakePipes("CREATE_FAILED", tagged.spec_hash(res.params))
    tagged.Pipe().update(Clients(pipes), res, [tagged.SPEC_TAG])  # type: ignore[arg-type]
    assert pipes.calls == ["delete", "create"] and pipes.pipe and pipes.pipe["CurrentState"] == "RUNNING"


def test_a_delivery_stream_whose_creation_failed_is_a_change_and_is_created_again() -> None:
    res = resource("delivery_stream")
    firehose = FakeFirehose("CREATING_FAILED", tagged.spec_hash(res.params))
    handler = tagged.DeliveryStream()
    assert handler.observe(Clients(firehose=firehose), res) != handler.desired(res)  # type: ignore[arg-type]
    handler.update(Clients(firehose=firehose), res, [tagged.SPEC_TAG])  # type: ignore[arg-type]
    assert firehose.calls == ["delete", "create"] and firehose.updates == []


def test_an_update_turns_off_the_encryption_and_conversion_the_new_spec_no_longer_asks_for() -> None:
    """KMS_KEY_ARN unset and OUTPUT_FORMAT=jsonl: UpdateDestination keeps what it is not given, so the stream
    kept writing with the key its role may no longer use, and kept converting to Parquet."""
    res = resource("delivery_stream", OUTPUT_FORMAT="jsonl")
    current = {"EncryptionConfiguration": {"KMSEncryptionConfig": {"AWSKMSKeyARN": "arn:aws:kms:k"}},
               "DataFormatConversionConfiguration": {"Enabled": True}, "FileExtension": ".parquet"}
    firehose = FakeFirehose("ACTIVE", "old", current)
    tagged.DeliveryStream().update(Clients(firehose=firehose), res, [tagged.SPEC_TAG])  # type: ignore[arg-type]
    (update,) = firehose.updates
    sent = update["ExtendedS3DestinationUpdate"]
    assert sent["EncryptionConfiguration"] == {"NoEncryptionConfig": "NoEncryption"}
    assert sent["DataFormatConversionConfiguration"] == {"Enabled": False}
    assert sent["FileExtension"] == ""
    assert (update["CurrentDeliveryStreamVersionId"], update["DestinationId"]) == ("7", "d-1")
