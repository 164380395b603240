"""The Lambda zip is the transform/ folder, byte-for-byte reproducible."""

from __future__ import annotations

import io
import zipfile

from bootstrap.resources.lambdas import TRANSFORM_DIR, build_zip, code_sha256


def test_zip_holds_the_handler_at_its_root_and_is_reproducible() -> None:
    first = build_zip.__wrapped__(TRANSFORM_DIR)
    second = build_zip.__wrapped__(TRANSFORM_DIR)
    assert first == second
    assert code_sha256(first) == code_sha256(second)
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "handler.py" in names
    assert all("/" not in n for n in names)


def test_the_zipped_handler_imports_and_runs_without_the_project() -> None:
    source = zipfile.ZipFile(io.BytesIO(build_zip())).read("handler.py")
    scope: dict = {"__name__": "handler"}
    exec(compile(source, "handler.py", "exec"), scope)
    assert scope["handler"]({"invocationId": "i", "records": []}, None) == {"records": []}
