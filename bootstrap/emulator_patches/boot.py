"""Start MiniStack with this project's pinned patches applied: `python boot.py` from the emulator's venv.

Runs in the emulator's own interpreter (.venv-emu), so it imports nothing of the project. Each
patch is a module beside this file, written for one MiniStack version and refused on any other:
a newer MiniStack may have fixed the bug or moved the code, and a patch that silently no longer
fits would be worse than none. docs/emulator-patches.md lists each patch and its upstream report.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

PINNED = "1.5.33"
# In this order: record_spill wraps what kinesis_reads installs; model_session first, before any module
# imports ministack.core.responses._service_model by name.
PATCHES = ("model_session", "stream_persistence", "athena_forward", "kinesis_reads", "record_spill")


def installed_version(package: str = "ministack") -> str | None:
    """The installed version, from the name of its `{name}-{version}.dist-info` directory beside the package
    (https://packaging.python.org/en/latest/specifications/recording-installed-packages/).

    Why not importlib.metadata: importing it, and what it loads, took about 30 ms of the emulator's 0.45 s
    start (8 starts each way), and MiniStack loads it again to report its version unless MINISTACK_VERSION says it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    for info in Path(spec.origin).parent.parent.glob(f"{package}-*.dist-info"):
        return info.name[len(package) + 1:-len(".dist-info")]
    return None


def apply_patches() -> list[str]:
    version = installed_version()
    if version != PINNED:
        sys.exit(f"error: the emulator patches are written for ministack {PINNED}, found {version}; "
                 "pin ministack in pyproject.toml or port docs/emulator-patches.md to the new version")
    for name in PATCHES:
        importlib.import_module(name).apply()
    os.environ["MINISTACK_VERSION"] = version  # what its health answer reports (ministack/app.py `_version`)
    return list(PATCHES)


if __name__ == "__main__":
    apply_patches()
    from ministack.app import main

    main()
