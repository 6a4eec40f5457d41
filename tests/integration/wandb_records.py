"""Read an offline W&B run's record file (``run-<id>.wandb``): what ``wandb sync`` would upload.

The file is a LevelDB-style log (wandb's ``datastore``): a 7-byte header, then 32 KiB blocks of
chunks, each ``crc32 (4) | length (2) | type (1) | data``, where type 1 is a whole record and 2/3/4 the
first, middle and last pieces of one. Every record is a ``wandb_internal_pb2.Record``. wandb ships no
reader, so the tests keep this small one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """Every record of a ``.wandb`` file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B record file"
    position, pieces = HEADER, b""
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:  # the block's tail is padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if kind == 0:  # zero padding up to the next block
            position += left_in_block
            continue
        pieces += data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record
            pieces = b""


def run_id(path: Path) -> str:
    """The id of the run a record file belongs to."""
    return next(r.run.run_id for r in records(path) if r.WhichOneof("record_type") == "run")


def history(path: Path) -> list[dict[str, Any]]:
    """The logged rows (``run.log``), values decoded from JSON."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows
