"""A Bytewax recovery store made and read from outside the dataflow.

The crash tests and the resume benchmark both create a store before the first run and look into
it afterwards (which shard snapshots an epoch wrote), without going through the engine.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path


def init_recovery(folder: Path, partitions: int) -> Path:
    """Create a Bytewax recovery store of ``partitions`` partitions (once per store)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(folder), str(partitions)], check=True
    )
    return folder


def latest_shard_snapshots(store: Path) -> list[bytes | None]:
    """The latest snapshot of every state key of the attribute step in a recovery store.

    As stored (``pickle.loads`` gives the ``Shard``), or None for a key discarded then.
    """
    snapshots: list[bytes | None] = []
    for part in store.glob("*.sqlite3"):
        db = sqlite3.connect(part)
        rows = db.execute(
            "SELECT ser_change FROM snaps s WHERE step_id LIKE '%attribute' AND snap_epoch = "
            "(SELECT MAX(snap_epoch) FROM snaps t WHERE t.step_id = s.step_id "
            "AND t.state_key = s.state_key)"
        ).fetchall()
        db.close()
        # Bytewax pickles what snapshot() returned: a ShardSnapshot, which unpickles as a Shard.
        snapshots += [change for (change,) in rows]
    return snapshots
