"""An Arrow dataset over a Python filesystem (`pyarrow.fs.PyFileSystem`) that DuckDB can scan without hanging.

Why: DuckDB scans a registered dataset as `dataset.scanner(columns=, filter=).to_reader()`, and
pyarrow's `Scanner.to_reader()` keeps the GIL while it starts the scan, which opens objects on
Arrow's I/O threads. Through a Python filesystem each open needs the GIL, while the caller waits
on a lock that I/O thread holds: the query hangs, at random, more often the more objects it reads
(docs/decisions.md section 3, with the text of the upstream report). `Scanner.to_table()` waits
with the GIL released, so this dataset's scanner hands DuckDB a reader over the whole result.

Only the counting wrapper of the tests and `make bench` (analytics/counting.py) is a Python
filesystem, over small lakes; the engine keeps streaming scans for Arrow's own filesystems.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds


class PythonFilesystemDataset(ds.FileSystemDataset):
    """A FileSystemDataset whose scanners read their result with the GIL released before handing it on."""

    def scanner(self, *args: Any, **kwargs: Any) -> MaterializingScanner:
        return MaterializingScanner(super().scanner(*args, **kwargs))


class MaterializingScanner:
    """A pyarrow Scanner whose `to_reader()` reads the whole result first (with the GIL released)."""

    def __init__(self, scanner: ds.Scanner) -> None:
        self._scanner = scanner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scanner, name)

    def to_reader(self) -> pa.RecordBatchReader:
        return self._scanner.to_table().to_reader()
