"""`make crawl` on every target: the local crawler where the emulator's crawler only flips its state, AWS's
own Glue crawler on `aws` (why the crawl is ours locally: docs/decisions.md section 1).

The managed crawler is started only when it is READY: a crawler already running is awaited, not started
again, since StartCrawler then fails with CrawlerRunningException
(https://docs.aws.amazon.com/glue/latest/webapi/API_StartCrawler.html).
"""

from __future__ import annotations

from typing import Any

from common.aws import Clients, wait_until
from common.config import Settings
from common.console import Console
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
    """Start the Glue crawler `name` unless it is already running, and wait until it is READY again."""
    if crawler_state(glue, name) == "READY":
        glue.start_crawler(Name=name)
    console.step(f"waiting for the Glue crawler {name}")
    wait_until(lambda: crawler_state(glue, name) == "READY", f"crawler {name} to finish",
               timeout=timeout, interval=interval)
    return "crawler finished"


def crawler_state(glue: Any, name: str) -> str:
    """READY, RUNNING or STOPPING (GetCrawler's Crawler.State)."""
    return glue.get_crawler(Name=name)["Crawler"]["State"]
