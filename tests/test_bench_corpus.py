"""The benchmark corpus is deterministic and every post passes the strict reader."""

from __future__ import annotations

import sys
from pathlib import Path

from builders import write_config
from publisher.config import load_config
from publisher.publish.content import read_posts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from corpus import CATEGORIES, write_corpus


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in write_corpus(tmp_path / "a", 30, seed=7)]
    again = [p.read_bytes() for p in write_corpus(tmp_path / "b", 30, seed=7)]
    other = [p.read_bytes() for p in write_corpus(tmp_path / "c", 30, seed=8)]
    assert first == again
    assert first != other


def test_corpus_reads_cleanly_into_eight_categories(tmp_path: Path) -> None:
    write_config(tmp_path)
    write_corpus(tmp_path / "posts", 200)
    result = read_posts(load_config(tmp_path))
    assert result.problems == ()
    assert len(result.posts) == 200
    assert {p.category for p in result.posts} == set(CATEGORIES)
