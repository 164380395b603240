"""The emulated targets' backfill: a parallel, strongly consistent Scan plays the export's role.

MiniStack accepts ExportTableToPointInTime and reports it COMPLETED, but writes no data file, so
there is nothing to read back (docs/backfill.md). A Scan with TotalSegments splits the table into
disjoint segments, one worker thread each; every page (Limit BACKFILL_PAGE_ITEMS) becomes one lake
object, and the segment's LastEvaluatedKey is checkpointed once that object is in S3, so a killed run
resumes at the first page it had not saved. ConsistentRead: a page reflects every write that
completed before it was read.
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backfill.core import Segment, Step, convert_items, parse_time, snapshot_id
from backfill.lake_out import LakeOut
from backfill.state import ProgressStore
from common.aws import Clients
from common.config import Settings
from common.retry import retrying

MAX_WORKERS = 8  # threads; more segments than this are worked through in turn


def scan_page(clients: Clients, settings: Settings, segment: int, total: int,
              start_key: dict[str, Any] | None) -> dict[str, Any]:
    """One Scan page in AWS's wire form (numbers as text, binary as base64), as the transform reads images.

    A raw call botocore does not retry, so it has its own loop (common/retry.py).
    """
    params: dict[str, Any] = {"TableName": settings.table_name, "Segment": segment, "TotalSegments": total,
                              "Limit": settings.backfill_page_items, "ConsistentRead": True}
    if start_key:
        params["ExclusiveStartKey"] = start_key
    return retrying(attempts=8)(clients.raw_json)("dynamodb", "Scan", params)


def run_segment(clients: Clients, settings: Settings, out: LakeOut, store: ProgressStore, step_index: int,
                segment: int, on_items: Callable[[int], None], stop: threading.Event | None = None) -> None:
    """Read one segment to its end from its checkpoint, saving after each page's object is written.

    `stop` (another worker failed) ends it between pages: what is saved stays saved, the rest resumes.
    """
    step = store.progress.steps[step_index]
    at = parse_time("snapshot", step.at)
    state = step.segment(segment)
    while not state.done and not (stop and stop.is_set()):
        page = scan_page(clients, settings, segment, step.total_segments, state.start_key)
        items = page.get("Items", [])
        converted = convert_items(items, at, int(time.time() * 1000), snapshot=snapshot_id(at))
        unfit = out.write_page(at, segment, state.next_page, converted.rows, converted.failed)
        last = page.get("LastEvaluatedKey")
        state = Segment(next_page=state.next_page + 1, start_key=last, done=not last,
                        items=state.items + len(converted.rows) - unfit,
                        failed=state.failed + len(converted.failed) + unfit)
        store.update_segment(step_index, segment, state)
        on_items(len(items))


def run_scan(clients: Clients, settings: Settings, out: LakeOut, store: ProgressStore,
             on_items: Callable[[int], None]) -> None:
    """Every unfinished segment of the run's one step, MAX_WORKERS at a time; the first failure stops the run."""
    step: Step = store.progress.steps[0]
    todo = [i for i in range(step.total_segments) if not step.segment(i).done]
    if not todo:
        return
    stop = threading.Event()

    def work(segment: int) -> None:
        try:
            run_segment(clients, settings, out, store, 0, segment, on_items, stop)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(todo)), thread_name_prefix="backfill") as pool:
        futures = [pool.submit(work, i) for i in todo]
        for future in futures:
            future.result()

