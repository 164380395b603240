"""README.md's table of deviations from AWS is the one common/deviations.py renders."""

from __future__ import annotations

from pathlib import Path

from common.deviations import DEVIATIONS, README, WRITE_COMMAND, main, readme_block, render

ROOT = Path(__file__).resolve().parents[3]


def test_the_readme_shows_the_deviations_table_the_code_holds() -> None:
    current = readme_block(README.read_text(encoding="utf-8"))
    assert current == render(), f"README.md's deviations table is stale: run `{WRITE_COMMAND}`"


def test_every_deviation_says_what_aws_does_what_runs_here_and_why() -> None:
    assert len({d.area for d in DEVIATIONS}) == len(DEVIATIONS)
    for d in DEVIATIONS:
        assert d.area and d.aws and d.local and d.why, d
        assert not d.where or (ROOT / d.where).exists(), f"{d.area}: {d.where} does not exist"


def test_write_fixes_a_stale_table_and_the_check_says_how(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- deviations:start -->\nold\n<!-- deviations:end -->\n\ntail\n", encoding="utf-8")

    assert main(["--readme", str(readme)]) == 1
    assert WRITE_COMMAND in capsys.readouterr().err
    assert main(["--readme", str(readme), "--write"]) == 0
    assert main(["--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8").endswith("<!-- deviations:end -->\n\ntail\n")
