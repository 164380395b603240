"""deploy-aws / destroy-aws end to end on moto: confirmation, and no emulator, no local runner, ever."""

from __future__ import annotations

import boto3
import pytest

import bootstrap.emulator
import common.aws
import runners.service
from bootstrap.deploy import CANCELLED, deploy, teardown
from bootstrap.plan import CREATE, build_plan
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.errors import TerminalError

from .conftest import ACCOUNT, REGION


def forbid(name: str):  # type: ignore[no-untyped-def]
    def call(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the aws target called {name}")

    return call


class Answer:
    """A confirmation prompt that records each question and gives one answer."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, question: str) -> bool:
        self.asked.append(question)
        return self.answer


def test_aws_target_never_reads_an_emulator_endpoint_nor_starts_local_runners(
    aws_env: str, aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common.aws, "emulator_healthy", forbid("the emulator health check"))
    monkeypatch.setattr(bootstrap.emulator, "start", forbid("emulator.start"))
    monkeypatch.setattr(runners.service, "start", forbid("runners.service.start"))
    monkeypatch.setattr(runners.service, "run", forbid("runners.service.run"))
    session = boto3.Session(region_name=REGION)
    urls: list[str] = []
    session.events.register("before-send", lambda request, **_: urls.append(request.url))
    clients = Clients(aws_settings, session=session)
    clients.ensure_reachable()  # a no-op without an emulator endpoint

    yes = Answer(True)
    plan = deploy(clients, aws_settings, Console(capture=True), confirm=yes)
    assert len(plan.pending) == 19 and len(yes.asked) == 1
    assert teardown(clients, aws_settings, Console(capture=True), confirm=Answer(True), empty_buckets=True) == 19

    assert aws_settings.endpoint_url is None
    assert urls and all(url.startswith(aws_env) for url in urls)  # moto stands where AWS's endpoints would be
    assert not any(f":{aws_settings.port}" in url for url in urls)  # never the emulator's port
    assert not aws_settings.runner_dir.exists()


def test_deploy_asks_first_names_account_and_caller_and_changes_nothing_when_refused(
    aws_clients: Clients, aws_settings: Settings
) -> None:
    no = Answer(False)
    console = Console(capture=True)
    with pytest.raises(TerminalError, match=CANCELLED):
        deploy(aws_clients, aws_settings, console, confirm=no)
    assert no.asked == [f"apply 19 change(s) to AWS account {ACCOUNT} in {REGION} as "
                     f"arn:aws:sts::{ACCOUNT}:user/moto?"]
    assert console.lines[0] == f"target aws: account {ACCOUNT} as arn:aws:sts::{ACCOUNT}:user/moto, region {REGION}"
    assert "  create  s3_bucket         sales-orders-lake-123456789012" in console.lines
    assert {c.action for c in build_plan(aws_clients, aws_settings).changes} == {CREATE}


def test_auto_approve_skips_the_question_and_a_second_deploy_changes_nothing(
    aws_clients: Clients, aws_settings: Settings
) -> None:
    deploy(aws_clients, aws_settings, Console(capture=True), confirm=forbid("confirm"), auto_approve=True)
    console = Console(capture=True)
    again = deploy(aws_clients, aws_settings, console, confirm=forbid("confirm"))
    assert again.pending == ()
    assert console.lines[-1] == "✓ no changes: every resource already matches the plan"
    with pytest.raises(TerminalError, match=CANCELLED):
        teardown(aws_clients, aws_settings, Console(capture=True), confirm=Answer(False))
    assert build_plan(aws_clients, aws_settings).pending == ()  # refused: nothing was deleted
    teardown(aws_clients, aws_settings, Console(capture=True), confirm=forbid("confirm"), auto_approve=True,
             empty_buckets=True)
