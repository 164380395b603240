"""Imports point the way the data flows (docs/decisions.md section 6): the rules are FORBIDDEN below.

Every `import` and `from ... import` of every product module, function-level ones included, is read
with `ast` (nothing is imported, so a wrong import is found even where it would never run). The
transform's own rule is stricter, the standard library only, and is checked in tests/unit/transform/test_handler.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from common.config import ROOT

PARTS = {"bootstrap", "generator", "runners", "lake", "analytics", "transform", "backfill"}
# Entry points (the CLI and the Make targets' own programs) import the parts; the parts never import them.
ENTRY_POINTS = {"cli", "chaos", "bench"}
EVERYTHING = PARTS | ENTRY_POINTS | {"common"}

# package -> the project packages it must never import, and the rule. lake/ is a shared layer like common/
# (the bootstrap, the runners and analytics all read its layout), so it imports no stage either.
FORBIDDEN: dict[str, tuple[set[str], str]] = {
    "common": (EVERYTHING - {"common"}, "the one config and the shared plumbing serve every part and import none"),
    "lake": (EVERYTHING - {"common", "lake"}, "the lake's layout is shared by the stages and imports none"),
    "transform": (EVERYTHING - {"transform"}, "transform/ imports nothing of the project (the Lambda zip)"),
    "generator": ({"runners", "analytics"} | ENTRY_POINTS, "a writer knows nothing of who reads the stream"),
    "runners": ({"generator", "analytics", "bootstrap"} | ENTRY_POINTS,
                "the runners never import the generator or analytics, nor the bootstrap (they read its "
                "specs through common/state_dir.py)"),
    "bootstrap": ({"analytics", "runners"} | ENTRY_POINTS,
                  "the bootstrap never imports analytics, nor the runners it writes specs for"),
    "analytics": ({"generator"} | ENTRY_POINTS, "analytics reads the lake and the catalog, never the generator"),
    "backfill": (ENTRY_POINTS, "a part never imports an entry point"),
    **{entry: (set(), "entry points import the parts") for entry in ENTRY_POINTS},
}


def top_level_packages(root: Path) -> set[str]:
    """The project's importable top-level names: packages with an __init__.py, and top-level modules."""
    names = {p.name for p in root.iterdir() if (p / "__init__.py").is_file() and not p.name.startswith(".")}
    return (names | {p.stem for p in root.glob("*.py")}) - {"tests", "setup", "conftest"}


def project_imports(path: Path, package: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported top-level project package) for every import in the file; relative ones stay at home."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [package] if node.level else [node.module or ""]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top in known:
                yield node.lineno, top


def wrong_way_imports(root: Path, forbidden: dict[str, tuple[set[str], str]]) -> list[str]:
    """One line per import that points the wrong way, naming the file, the line and the rule."""
    known = top_level_packages(root)
    found = []
    for package in sorted(known):
        module = root / f"{package}.py"
        files = [module] if module.is_file() else sorted((root / package).rglob("*.py"))
        never, why = forbidden[package]
        for path in files:
            for line, imported in project_imports(path, package, known):
                if imported in never:
                    found.append(f"{path.relative_to(root)}:{line} imports {imported}: {why}")
    return found


def test_every_package_of_the_project_has_a_rule() -> None:
    """A new top-level package must say where it stands before it can import or be imported."""
    assert top_level_packages(ROOT) - set(FORBIDDEN) == set()


def test_no_import_points_the_wrong_way() -> None:
    assert wrong_way_imports(ROOT, FORBIDDEN) == []


def test_runners_and_bootstrap_do_not_import_each_other() -> None:
    """They once did (the spec path and process control): both now live in common/, and stay there."""
    assert {"bootstrap"} <= FORBIDDEN["runners"][0] and {"runners"} <= FORBIDDEN["bootstrap"][0]


def test_the_walk_sees_imports_and_finds_a_wrong_one(tmp_path: Path) -> None:
    """The checker itself, on a tree of three files: a function-level import is found too."""
    for package in ("common", "runners", "bootstrap"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "runners" / "service.py").write_text(
        "from common.config import Settings\nfrom . import loop\n\n\ndef f():\n    from bootstrap.emulator import x\n")
    (tmp_path / "bootstrap" / "emulator.py").write_text("import common.process\nimport json\n")
    rules = {"common": (set(), ""), "runners": ({"bootstrap"}, "one way"), "bootstrap": ({"runners"}, "one way")}
    assert wrong_way_imports(tmp_path, rules) == ["runners/service.py:6 imports bootstrap: one way"]
    assert sorted(project_imports(tmp_path / "runners" / "service.py", "runners", {"common", "runners"})) == [
        (1, "common"), (2, "runners")]
