"""Per-column digests of the golden cases, to show that a change only adds output columns.

The golden digests hash whole tables, so a new column changes them even when no existing value
moved. Record per-column digests (per item for ``cashflows``, whose rows are items) on the tree
before and after, then compare: every column of the first must be in the second with its bits.

    python tests/golden/compare_columns.py record before.json    # on the old tree
    python tests/golden/compare_columns.py record after.json     # on the new tree
    python tests/golden/compare_columns.py compare before.json after.json
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
import test_golden as golden  # noqa: E402


def column_digest(column: pa.ChunkedArray) -> str:
    h = hashlib.sha256(str(column.type).encode())
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        h.update(np.ascontiguousarray(column.to_numpy()).tobytes())
    else:
        h.update(json.dumps(column.to_pylist(), default=repr).encode())
    return h.hexdigest()


def record(out: Path) -> None:
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in golden.CASES:
            name = "-".join(case)
            folder = Path(tmp) / name
            golden.run_case(*case, folder)
            found = {}
            for table in golden.TABLES:
                data = pq.read_table(folder / f"{table}.parquet")
                if table == "cashflows":
                    frame = data.to_pandas()
                    for (owner, item), rows in frame.groupby(["tranche", "item"], sort=False):
                        found[f"cashflows[{owner}.{item}]"] = hashlib.sha256(
                            rows.reset_index(drop=True).to_csv().encode()).hexdigest()
                else:
                    for column, values in zip(data.column_names, data.columns):
                        found[f"{table}.{column}"] = column_digest(values)
            digests[name] = found
            print(name, "recorded", file=sys.stderr)
    out.write_text(json.dumps(digests, indent=0, sort_keys=True) + "\n")


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    moved = [(case, key) for case in a for key, digest in a[case].items() if b.get(case, {}).get(key) != digest]
    added = sorted({key for case in b for key in b[case]} - {key for case in a for key in a[case]})
    for case, key in moved:
        print("changed or missing:", case, key)
    print(f"{len(moved)} existing columns changed or missing; {len(added)} new: {', '.join(added)}")
    return 1 if moved else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"] and len(sys.argv) == 3:
        record(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
