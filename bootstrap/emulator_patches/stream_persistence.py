"""Patch: a persisted MiniStack restart keeps each table's DynamoDB stream records.

MiniStack 1.5.33 persists tables and items (PERSIST_STATE=1) but keeps stream records only in
memory, so after a graceful restart a stream is empty while the table is not, and a stream
iterator (which encodes an absolute position) silently reads nothing until new writes pass its
position. On AWS a stream keeps its records for 24 hours whatever happens to the service, so a
consumer that was behind simply catches up. This patch adds the records and the count of records
already trimmed off each stream's front to the DynamoDB module's saved state, and restores them,
so positions stay absolute and nothing between a consumer's checkpoint and the restart is lost.
docs/emulator-patches.md has the upstream report.
"""

from __future__ import annotations

import copy
from typing import Any


def apply() -> None:
    from ministack.services import dynamodb

    original_get_state = dynamodb.get_state
    original_load = dynamodb.load_persisted_state

    def get_state() -> dict[str, Any]:
        state = original_get_state()
        state["stream_records"] = copy.deepcopy(dynamodb._stream_records)
        state["stream_trimmed"] = copy.deepcopy(dynamodb._stream_trimmed)
        return state

    def load_persisted_state(data: dict[str, Any] | None) -> Any:
        result = original_load(data)
        for key, store in (("stream_records", dynamodb._stream_records), ("stream_trimmed", dynamodb._stream_trimmed)):
            # Not `data.get(key) or {}`: a scoped dict is falsy when the *current* account and Region hold
            # nothing, and the records of every other scope would be dropped.
            saved = (data or {}).get(key)
            if saved is not None:
                store.update(saved)
        return result

    dynamodb.get_state = get_state
    dynamodb.load_persisted_state = load_persisted_state
