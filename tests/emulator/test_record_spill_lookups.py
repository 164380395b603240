"""The record_spill patch's GetShardIterator (docs/emulator-patches.md) finds a sequence number by bisection,
which assumes the stream's records are in sequence order. MiniStack numbers a record under a lock and appends
it later, and writes from threads other than the event loop (Step Functions, IoT rules), so two records can
land out of order: the bisection then answered TrimmedDataAccessException for a record the stream holds. A
SequenceNumber that is not a string raised TypeError (a server error) where MiniStack answers 400. And a deep
copy of the spilled records shared the recent ones with the store.

Runs the patch in the emulator's own interpreter; no emulator is started: the functions alone.
"""

from __future__ import annotations

from tests.fixtures.emulator_probe import run_in_emulator

PROBE = """
import json, os, sys, tempfile
os.environ["STATE_DIR"] = tempfile.mkdtemp()
sys.path.insert(0, sys.argv[1])
import kinesis_reads, record_spill
kinesis_reads.apply()
record_spill.apply()
from ministack.services import dynamodb, dynamodb_streams
dynamodb._create_table({"TableName": "tbl", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST",
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
for i in range(3):
    dynamodb._put_item({"TableName": "tbl", "Item": {"pk": {"S": f"k{i}"}}})
import copy
spilled = dynamodb._stream_records.get("tbl")
copied_is_live = copy.deepcopy(spilled)[0] is spilled[0]  # a deep copy must not share the recent records
records = list(spilled)
records[0], records[1] = records[1], records[0]  # appended out of sequence order
dynamodb._stream_records["tbl"] = records
arn = dynamodb._tables.get("tbl")["LatestStreamArn"]
def ask(seq):
    status, _, body = dynamodb_streams._get_shard_iterator(
        {"StreamArn": arn, "ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": seq})
    return status
print(json.dumps({"displaced": ask(records[0]["dynamodb"]["SequenceNumber"]),
                  "in_place": ask(records[2]["dynamodb"]["SequenceNumber"]),
                  "absent": ask("9" * 21), "not_a_string": ask(1), "copied_is_live": copied_is_live}))
"""


def test_lookups_answer_as_ministack_does_even_for_records_out_of_order() -> None:
    assert run_in_emulator(PROBE) == {"displaced": 200, "in_place": 200, "absent": 400, "not_a_string": 400,
                                       "copied_is_live": False}
