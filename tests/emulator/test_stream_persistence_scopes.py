"""The stream_persistence patch (docs/emulator-patches.md) restores the stream records of every account and
Region, not only the emulator's default one.

Runs the patch in the emulator's own interpreter (`emulator_python()`) and round-trips MiniStack's persisted
state through its own JSON hooks, as a restart does. No emulator is started: this is the function alone.
The restore used `data.get("stream_records") or {}`: MiniStack's scoped dict is falsy when the *current*
scope holds nothing, so the records of a table created by a client signing for eu-west-1 were dropped.
"""

from __future__ import annotations

from tests.fixtures.emulator_probe import run_in_emulator

PROBE = """
import json, os, sys, tempfile
os.environ["STATE_DIR"] = tempfile.mkdtemp()
os.environ["MINISTACK_REGION"] = "us-east-1"
sys.path.insert(0, sys.argv[1])
import stream_persistence
stream_persistence.apply()
from ministack.services import dynamodb
from ministack.core import persistence
record = {"eventID": "e1", "dynamodb": {"SequenceNumber": "1", "ApproximateCreationDateTime": 9e9}}
dynamodb._stream_records.set_scoped("000000000000", "eu-west-1", "orders", [record])
dynamodb._stream_trimmed.set_scoped("000000000000", "eu-west-1", "orders", 7)
blob = json.dumps({"payload": dynamodb.get_state()}, default=persistence._json_default)
data = json.loads(blob, object_hook=persistence._json_object_hook)["payload"]
dynamodb._stream_records.clear()
dynamodb._stream_trimmed.clear()
dynamodb.load_persisted_state(data)
print(json.dumps({
    "records": [r["eventID"] for r in dynamodb._stream_records.get_scoped("000000000000", "eu-west-1", "orders") or []],
    "trimmed": dynamodb._stream_trimmed.get_scoped("000000000000", "eu-west-1", "orders"),
}))
"""


def test_stream_records_of_another_region_survive_a_persisted_restart() -> None:
    assert run_in_emulator(PROBE) == {"records": ["e1"], "trimmed": 7}
