"""`make crawl` on every target: the local crawler where the emulator's crawler only flips its state, AWS's
own Glue crawler on `aws` (why the crawl is ours locally: docs/decisions.md section 1).

The managed crawler is started only when it is READY (StartCrawler refuses a running one with
CrawlerRunningException, https://docs.aws.amazon.com/glue/latest/webapi/API_StartCrawler.html): a run already
in progress is awaited first, then the crawler is started, since that run may have begun before the objects
`make crawl` was asked to catalog. READY again says only that the crawl ended: LastCrawl.Status says whether it
succeeded (https://docs.aws.amazon.com/glue/latest/webapi/API_LastCrawlInfo.html).
"""

from __future__ import annotations

from typing import Any

from common.aws import Clients, wait_until
from common.config import Settings
from common.console import Console
from common.errors import TerminalError
from runners.crawler import crawl as local_crawl

CRAWL_TIMEOUT_S = 900.0  # a crawl of a large lake takes minutes on AWS
POLL_INTERVAL_S = 10.0  # GetCrawler is a control-plane call: no need to poll it faster


def crawl_target(clients: Clients, settings: Settings, console: Console) -> str:
    """Catalog the lake with the target's crawler; return the line that says what was done."""
    if settings.emulated:
        return local_crawl(clients, settings, console).summary()
    return run_managed_crawler(clients.glue, settings.crawler_name, console)


def run_managed_crawler(glue: Any, name: str, console: Console, *, timeout: float = CRAWL_TIMEOUT_S,
                        interval: float = POLL_INTERVAL_S) -> str:
    """Run the Glue crawler `name` once from READY (after the run in progress, if any) and wait for it; a crawl
    that did not succeed is a TerminalError naming why."""
    console.step(f"waiting for the Glue crawler {name}")
    wait_ready(glue, name, timeout, interval)  # at once when READY; else the run in progress ends first
    glue.start_crawler(Name=name)
    last = wait_ready(glue, name, timeout, interval).get("LastCrawl") or {}
    status = last.get("Status", "SUCCEEDED")
    if status == "FAILED":
        log = f"{last['LogGroup']}, stream {last.get('LogStream', name)}" if last.get("LogGroup") else "CloudWatch Logs"
        raise TerminalError(f"the Glue crawler {name} failed: {last.get('ErrorMessage', 'no reason given')}; "
                            f"its log: {log}")
    if status == "CANCELLED":
        raise TerminalError(f"the Glue crawler {name} was stopped before it finished (CANCELLED); run `make crawl` "
                            "again")
    return "crawler finished"


def wait_ready(glue: Any, name: str, timeout: float, interval: float) -> dict[str, Any]:
    """Poll GetCrawler until READY; return that last answer's Crawler (its LastCrawl is the run that ended)."""
    latest: dict[str, Any] = {}

    def ready() -> bool:
        latest.clear()
        latest.update(glue.get_crawler(Name=name)["Crawler"])
        return latest["State"] == "READY"

    wait_until(ready, f"crawler {name} to finish", timeout=timeout, interval=interval)
    return latest
