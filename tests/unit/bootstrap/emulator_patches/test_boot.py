"""boot.py's version pin, read without importlib.metadata (bootstrap/emulator_patches/boot.py)."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from bootstrap.emulator_patches import boot


def installed(site: Path, name: str, version: str) -> None:
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_the_version_is_the_one_importlib_metadata_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed(tmp_path, "fakestack", "1.5.33")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fakestack", raising=False)
    assert boot.installed_version("fakestack") == importlib.metadata.version("fakestack") == "1.5.33"


def test_a_package_that_is_not_installed_has_no_version() -> None:
    assert boot.installed_version("no_such_package_here") is None


def test_another_version_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boot, "installed_version", lambda: "1.5.34")
    with pytest.raises(SystemExit, match=r"written for ministack 1\.5\.33, found 1\.5\.34; pin ministack"):
        boot.apply_patches()
