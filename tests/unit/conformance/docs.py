"""Load the AWS-documented examples under tests/fixtures/aws_docs/ (each names its page in `_source`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "aws_docs"


def aws_doc(name: str) -> dict[str, Any]:
    return json.loads((DOCS / f"{name}.json").read_text(encoding="utf-8"))
