"""A read-only Arrow filesystem wrapper that records every object opened: the partition-pruning measure.

A query for one day must open only that day's objects; the tests assert it and `make bench`
reports objects read per query with it (docs/decisions.md section 3).
"""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs


class CountingHandler(pafs.FileSystemHandler):
    """Wraps a real Arrow filesystem and records every object opened for reading."""

    def __init__(self, inner: pafs.FileSystem) -> None:
        self.inner = inner
        self.opened: list[str] = []

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    __hash__ = object.__hash__

    def get_type_name(self) -> str:
        return "counting+" + self.inner.type_name

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.inner.get_file_info(selector)

    def open_input_stream(self, path: str) -> Any:
        self.opened.append(path)
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        self.opened.append(path)
        return self.inner.open_input_file(path)

    def _read_only(self, *args: Any) -> Any:
        raise OSError("the counting filesystem is read-only")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


def counting_filesystem(inner: pafs.FileSystem) -> tuple[pafs.PyFileSystem, CountingHandler]:
    handler = CountingHandler(inner)
    return pafs.PyFileSystem(handler), handler
