"""Golden output: the fixture site's whole build, byte for byte (as Pelican's tests do).

After an intended change, refresh with `make golden` and review the diff in git.
"""

from __future__ import annotations

import difflib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from publisher.config import load_config
from publisher.publish.build import build

HERE = Path(__file__).parent
SITE = HERE / "fixtures" / "golden-site"
GOLDEN = HERE / "golden" / "golden-site"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_golden_site_output(tmp_path: Path):
    out = tmp_path / "public"
    build(load_config(SITE, env={}), NOW, output=out)
    if os.environ.get("PUBLISHER_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN)
    actual, expected = files(out), files(GOLDEN)
    assert sorted(actual) == sorted(expected), "file set differs; run `make golden` and review"
    for name in expected:
        if actual[name] != expected[name]:
            diff = difflib.unified_diff(
                expected[name].decode().splitlines(),
                actual[name].decode().splitlines(),
                name,
                name,
                lineterm="",
            )
            raise AssertionError(
                "\n".join(list(diff)[:60]) + "\n(run `make golden` after an intended change)"
            )
