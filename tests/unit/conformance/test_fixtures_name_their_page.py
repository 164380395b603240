"""Every AWS-documented fixture says which AWS page it was copied from."""

from __future__ import annotations

import json

from tests.unit.conformance.docs import DOCS


def test_every_fixture_names_an_aws_documentation_page() -> None:
    files = sorted(DOCS.glob("*.json"))
    assert files
    for path in files:
        source = json.loads(path.read_text(encoding="utf-8")).get("_source", "")
        assert source.startswith("https://docs.aws.amazon.com/"), f"{path.name}: no AWS page in _source"
        assert path.name in (DOCS / "README.md").read_text(encoding="utf-8"), f"{path.name} missing from README"
