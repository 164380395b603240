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
from common.errors import TerminalError, TransientError
from runners.crawler import CrawlResult
from runners.glue_crawl import crawl_target, run_managed_crawler

NAME = "sales-orders-crawler"


def glue_client() -> Any:
    return boto3.Session(region_name="eu-west-1", aws_access_key_id="stub",
                         aws_secret_access_key="stub").client("glue")


def state(value: str, last: str | None = None, error: str = "") -> dict[str, Any]:
    """GetCrawler's answer; `last`: LastCrawl.Status (SUCCEEDED, CANCELLED or FAILED) with its ErrorMessage."""
    crawler: dict[str, Any] = {"Name": NAME, "State": value}
    if last:
        crawler["LastCrawl"] = {"Status": last, **({"ErrorMessage": error} if error else {}),
                                "LogGroup": "/aws-glue/crawlers", "LogStream": NAME}
    return {"Crawler": crawler}


def test_a_ready_crawler_is_started_then_awaited_until_ready_again() -> None:
    glue, console = glue_client(), Console(capture=True)
    with Stubber(glue) as stub:
        stub.add_response("get_crawler", state("READY", "SUCCEEDED"), {"Name": NAME})
        stub.add_response("start_crawler", {}, {"Name": NAME})
        stub.add_response("get_crawler", state("RUNNING", "SUCCEEDED"), {"Name": NAME})
        stub.add_response("get_crawler", state("STOPPING", "SUCCEEDED"), {"Name": NAME})
        stub.add_response("get_crawler", state("READY", "SUCCEEDED"), {"Name": NAME})
        assert run_managed_crawler(glue, NAME, console, interval=0) == "crawler finished"
        stub.assert_no_pending_responses()
    assert console.lines == [f"> waiting for the Glue crawler {NAME}"]


def test_a_running_crawler_is_awaited_then_run_again_for_the_objects_that_landed_after_it_began() -> None:
    """StartCrawler refuses a running crawler (CrawlerRunningException, API_StartCrawler.html): the run in
    progress is awaited first, then the crawler is started, so what `make crawl` was asked to catalog is."""
    glue = glue_client()
    with Stubber(glue) as stub:
        stub.add_response("get_crawler", state("RUNNING"), {"Name": NAME})
        stub.add_response("get_crawler", state("READY", "SUCCEEDED"), {"Name": NAME})
        stub.add_response("start_crawler", {}, {"Name": NAME})
        stub.add_response("get_crawler", state("READY", "SUCCEEDED"), {"Name": NAME})
        run_managed_crawler(glue, NAME, Console(capture=True), interval=0)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("last", "error", "message"), [
    ("FAILED", "Insufficient Lake Formation permission(s) on sales_orders_db",
     f"the Glue crawler {NAME} failed: Insufficient Lake Formation permission(s) on sales_orders_db; its log: "
     f"/aws-glue/crawlers, stream {NAME}"),
    ("CANCELLED", "", f"the Glue crawler {NAME} was stopped before it finished (CANCELLED); run `make crawl` "
                      "again"),
])
def test_a_crawl_that_did_not_succeed_is_an_error_naming_why_not_a_success(last: str, error: str,
                                                                         message: str) -> None:
    """LastCrawl.Status (API_LastCrawlInfo.html): READY again says the crawl ended, not that it succeeded."""
    glue = glue_client()
    with Stubber(glue) as stub:
        stub.add_response("get_crawler", state("READY"), {"Name": NAME})
        stub.add_response("start_crawler", {}, {"Name": NAME})
        stub.add_response("get_crawler", state("READY", last, error), {"Name": NAME})
        with pytest.raises(TerminalError) as err:
            run_managed_crawler(glue, NAME, Console(capture=True), interval=0)
    assert str(err.value) == message


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
        done = {"Crawler": {"Name": "my-crawler", "State": "READY", "LastCrawl": {"Status": "SUCCEEDED"}}}
        stub.add_response("get_crawler", done, {"Name": "my-crawler"})
        stub.add_response("start_crawler", {}, {"Name": "my-crawler"})
        stub.add_response("get_crawler", done, {"Name": "my-crawler"})  # READY at the first poll: no wait
        assert crawl_target(clients, settings, Console(capture=True)) == "crawler finished"
