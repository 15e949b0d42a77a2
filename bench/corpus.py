"""A deterministic Korean/English post corpus for the speed benchmarks.

The same (count, seed) always gives the same files, byte for byte, so benchmarks of Publisher and its
peers (Pelican, Hugo) run on one corpus and a rebuild can be compared with a cold build. Each post is
about 2.5 KB: front matter (title, date, one of 8 categories, tags), headings, a list, a table, a code
block, links and Hangul and Latin prose in the mix the sample site has.

    .venv/bin/python bench/corpus.py /tmp/corpus --posts 10000 --seed 1
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

CATEGORIES = ("세계", "기술", "경제", "문화", "과학", "정책", "산업", "안내")
TAGS = (
    "AI",
    "반도체",
    "HBM",
    "환율",
    "수출",
    "기후",
    "에너지",
    "배터리",
    "우주",
    "보안",
    "금리",
    "교육",
)
KOREAN = (
    "미중 기술 경쟁은 이제 격차 유지에서 혁신 속도로 무게중심이 이동하고 있습니다.",
    "한국은 메모리 반도체에서의 강점을 바탕으로 경쟁력을 구축해야 할 시점입니다.",
    "정책의 효과는 발표가 아니라 현장에서 측정되어야 합니다.",
    "수출 통계는 물량과 단가를 나누어 읽을 때 비로소 의미가 드러납니다.",
    "기사 한 편보다 여러 자료를 함께 놓고 보는 습관이 중요합니다.",
    "데이터센터 전력 수요는 앞으로 몇 년간 가파르게 늘어날 전망입니다.",
)
ENGLISH = (
    "Supply chains respond to policy with a lag of several quarters.",
    "The benchmark numbers tell only part of the story; deployment tells the rest.",
    "Export controls shape where the next factories are built.",
    "Memory bandwidth, not raw compute, often sets the ceiling.",
)
CODE = "```python\ndef growth(a: float, b: float) -> float:\n    return (b - a) / a * 100\n```\n"


def paragraph(rng: random.Random) -> str:
    sentences = [rng.choice(KOREAN) for _ in range(rng.randint(3, 5))]
    sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(ENGLISH))
    return " ".join(sentences)


def post_text(n: int, rng: random.Random, start: datetime) -> str:
    date = (start + timedelta(hours=n * 3, minutes=rng.randrange(60))).strftime("%Y-%m-%d %H:%M")
    category = CATEGORIES[rng.randrange(len(CATEGORIES))]
    tags = ", ".join(sorted(set(rng.sample(TAGS, 3))))
    rows = "\n".join(f"| {t} | {rng.randint(1, 99)}% |" for t in rng.sample(TAGS, 3))
    body = [
        paragraph(rng),
        "## 핵심 요점",
        "\n".join(f"- {rng.choice(KOREAN)}" for _ in range(3)),
        paragraph(rng),
        "## 숫자로 보기",
        f"| 분야 | 비중 |\n|---|---|\n{rows}",
        paragraph(rng),
        CODE,
        f"더 읽을거리: [관련 자료](https://example.com/notes/{n}) 와 [통계](https://example.org/s/{n % 97}).",
        paragraph(rng),
    ]
    front = f'---\ntitle: "합성 글 {n}: {rng.choice(TAGS)} 읽기"\ndate: {date}\n'
    front += f"category: {category}\ntags: [{tags}]\n---\n\n"
    return front + "\n\n".join(body) + "\n"


def write_corpus(posts_dir: Path, count: int, seed: int = 1) -> list[Path]:
    """Write `count` posts into `posts_dir`; the same (count, seed) gives identical files."""
    rng = random.Random(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    posts_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        path = posts_dir / f"post-{n:05d}.md"
        path.write_text(post_text(n, rng, start), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="Folder to write the posts into.")
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    written = write_corpus(args.folder, args.posts, args.seed)
    size = sum(p.stat().st_size for p in written)
    print(
        f"{len(written)} posts, {size / len(written) / 1024:.1f} KB each on average, in {args.folder}"
    )


if __name__ == "__main__":
    main()
