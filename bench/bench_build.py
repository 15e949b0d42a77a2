"""Build-speed benchmark: cost per post at 10x the baseline size, as a ratio.

Generates synthetic Korean posts (5 categories, tags, a table and a list each)
into temporary sites of 1,000 (baseline) and N posts, builds each cold, and
prints seconds and the per-post ratio N/baseline (1.0 = perfectly linear).

    .venv/bin/python bench/bench_build.py            # N = 10,000
    .venv/bin/python bench/bench_build.py --posts 3000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from builders import write_config
from publisher.config import load_config
from publisher.publish.build import build

CATEGORIES = ("세계", "기술", "경제", "문화", "안내")
BODY = """미중 기술 경쟁은 이제 '격차 유지'에서 '혁신 속도'로 무게중심이 이동하고 있습니다. {n}번째 글입니다.

## 핵심 요점

- 첫째 요점과 설명
- 둘째 요점과 설명

| 분야 | 현재 상황 |
|---|---|
| AI | 세계 3위 수준 |

한국은 HBM과 메모리 반도체에서의 강점을 바탕으로 경쟁력을 구축해야 할 시점입니다.
"""


def make_site(root: Path, count: int) -> Path:
    write_config(root, site={"posts_per_page": 10})
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for n in range(count):
        date = (start + timedelta(hours=n)).strftime("%Y-%m-%d %H:%M")
        text = (
            f"---\ntitle: 합성 글 {n}\ndate: {date}\ncategory: {CATEGORIES[n % 5]}\n"
            f"tags: [태그{n % 50}, AI]\n---\n" + BODY.format(n=n)
        )
        (root / "posts" / f"post-{n}.md").write_text(text, encoding="utf-8")
    return root


def timed_build(root: Path) -> float:
    config = load_config(root)
    started = time.perf_counter()
    build(config, datetime(2030, 1, 1, tzinfo=UTC))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = timed_build(make_site(Path(tmp) / "base", args.baseline))
        big = timed_build(make_site(Path(tmp) / "big", args.posts))
    per_post_ratio = (big / args.posts) / (base / args.baseline)
    print(f"baseline: {args.baseline:>6} posts cold build {base:7.2f} s")
    print(f"measured: {args.posts:>6} posts cold build {big:7.2f} s")
    print(f"per-post cost ratio (measured/baseline): {per_post_ratio:.2f}  (1.00 = linear)")


if __name__ == "__main__":
    main()
