"""`make crawl`'s choice of crawler, and the managed crawler's start and wait as they go on the wire."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import runners.glue_crawl
from common.aws import Clients
from common.config import load_settings
from common.console import Console
from common.errors import TransientError
from runners.crawler import CrawlResult
from runners.glue_crawl import crawl_target, run_managed_crawler

NAME = "sales-orders-crawler"


def glue_client() -> Any:
    return boto3.Session(region_name="eu-west-1", aws_access_key_id="stub",
                         aws_secret_access_key="stub").client("glue")


def state(value: str) -> dict[str, Any]:
    return {"Crawler": {"Name": NAME, "State": value}}


def test_a_ready_crawler_is_started_then_awaited_until_ready_again() -> None:
    glue, console = glue_client(), Console(capture=True)
    with Stubber(glue) as stub:
        stub.add_response("get_crawler", state("READY"), {"Name": NAME})
        stub.add_response("start_crawler", {}, {"Name": NAME})
        stub.add_response("get_crawler", state("RUNNING"), {"Name": NAME})
        stub.add_response("get_crawler", state("STOPPING"), {"Name": NAME})
        stub.add_response("get_crawler", state("READY"), {"Name": NAME})
        assert run_managed_crawler(glue, NAME, console, interval=0) == "crawler finished"
        stub.assert_no_pending_responses()
    assert console.lines == [f"> waiting for the Glue crawler {NAME}"]


def test_a_running_crawler_is_awaited_not_started_again() -> None:
    glue = glue_client()
    with Stubber(glue) as stub:  # a start_crawler call would find no stubbed response and fail
        stub.add_response("get_crawler", state("RUNNING"), {"Name": NAME})
        stub.add_response("get_crawler", state("READY"), {"Name": NAME})
        run_managed_crawler(glue, NAME, Console(capture=True), interval=0)
        stub.assert_no_pending_responses()


def test_a_crawler_that_never_finishes_times_out_naming_it() -> None:
    class Stuck:
        def get_crawler(self, Name: str) -> dict[str, Any]:
            return state("RUNNING")

    with pytest.raises(TransientError, match=f"waiting for crawler {NAME} to finish"):
        run_managed_crawler(Stuck(), NAME, Console(capture=True), timeout=0.05, interval=0.01)


def test_emulated_targets_run_the_local_crawler_and_say_what_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CrawlResult("db", "t", "s3://b/orders/", table_created=False, columns_added=(),
                         partitions_added=(), partitions_total=2, objects_read=4)
    calls: list[Any] = []
    monkeypatch.setattr(runners.glue_crawl, "local_crawl", lambda *args: calls.append(args) or result)
    settings = load_settings(env={"TARGET": "embedded"})
    clients = Clients(settings)
    console = Console(capture=True)
    assert crawl_target(clients, settings, console) == result.summary()
    assert calls == [(clients, settings, console)]


def test_aws_runs_the_managed_crawler_named_in_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runners.glue_crawl, "local_crawl", lambda *args: pytest.fail("no local crawl on aws"))
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": "eu-west-1", "CRAWLER_NAME": "my-crawler"})
    clients = Clients(settings, session=boto3.Session(region_name="eu-west-1", aws_access_key_id="stub",
                                                      aws_secret_access_key="stub"))
    with Stubber(clients.glue) as stub:
        stub.add_response("get_crawler", {"Crawler": {"Name": "my-crawler", "State": "RUNNING"}},
                          {"Name": "my-crawler"})
        stub.add_response("get_crawler", {"Crawler": {"Name": "my-crawler", "State": "READY"}},
                          {"Name": "my-crawler"})  # READY at the first poll: no wait
        assert crawl_target(clients, settings, Console(capture=True)) == "crawler finished"
