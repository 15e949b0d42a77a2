"""Atomic output (G10, G11) and output path safety (A14, A21)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from publisher.publish.writer import OutputConflictError, OutputTree, commit


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_commit_replaces_the_whole_tree(tmp_path: Path):
    out = tmp_path / "public"
    first = OutputTree()
    first.add("a/index.html", "one")
    first.add("old.html", "old")
    commit(first, out)
    second = OutputTree()
    second.add("a/index.html", "two")
    summary = commit(second, out)
    assert snapshot(out) == {"a/index.html": b"two"}
    assert summary.files == 1
    assert [p.name for p in tmp_path.iterdir()] == ["public"]  # no staging left behind


def test_two_outputs_at_one_path_are_refused_case_and_nfc_insensitive():
    tree = OutputTree()
    tree.add("posts/한글/index.html", "a", owner="posts/a.md")
    with pytest.raises(OutputConflictError, match=r"posts/a\.md and posts/b\.md"):
        tree.add(
            "posts/한글/index.html".replace("한글", "\u1112\u1161\u11ab\u1100\u1173\u11af"),
            "b",
            owner="posts/b.md",
        )


@pytest.mark.parametrize("path", ["../x.html", "/etc/passwd", "a/../../x", "a\\..\\x"])
def test_a21_paths_cannot_leave_the_output(path: str):
    with pytest.raises(OutputConflictError, match="would leave the output folder"):
        OutputTree().add(path, "x")


def _child_build(out: Path, files: int, size: int) -> str:
    return textwrap.dedent(
        f"""
        from pathlib import Path
        from publisher.publish.writer import OutputTree, commit
        tree = OutputTree()
        for n in range({files}):
            tree.add(f"p{{n}}/index.html", b"x" * {size})
        commit(tree, Path({str(out)!r}))
        """
    )


def test_g10_file_size_limit_mid_build_leaves_old_output_identical(tmp_path: Path):
    out = tmp_path / "public"
    old = OutputTree()
    old.add("index.html", "previous build")
    commit(old, out)
    before = snapshot(out)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = subprocess.run(
        [sys.executable, "-c", _child_build(out, 3, 10_000)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "over the file-size limit (EFBIG" in proc.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_g11_killed_build_leaves_old_output_identical(tmp_path: Path):
    out = tmp_path / "public"
    old = OutputTree()
    old.add("index.html", "previous build")
    commit(old, out)
    before = snapshot(out)
    script = _child_build(out, 5000, 1000).replace(
        "commit(tree",
        "import os, signal\nimport publisher.publish.writer as w\n"
        "orig = w._write_all\n"
        "def killing(tree, root):\n"
        "    (root / 'partial.html').write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "w._write_all = killing\n"
        "commit(tree",
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert snapshot(out) == before
    # The next build cleans up the abandoned staging folder.
    fresh = OutputTree()
    fresh.add("index.html", "next")
    commit(fresh, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public"]
    assert os.listdir(out) == ["index.html"]


def _limit_file_size() -> None:
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, not a kill, past the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_item11_file_size_limit_says_what_happened_and_that_the_output_is_unchanged(
    tmp_path: Path,
):
    out = tmp_path / "public"
    old = OutputTree()
    old.add("index.html", "previous build")
    commit(old, out)
    before = snapshot(out)
    script = (
        _child_build(out, 3, 10_000).replace(
            "commit(tree, Path(",
            "from publisher.publish.writer import WriteError\ntry:\n    commit(tree, Path(",
        )
        + "except WriteError as exc:\n    print(exc)\n    print('hint:', exc.hint)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], preexec_fn=_limit_file_size, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "the build could not be written: a file is over the file-size limit (EFBIG; see "
        f"`ulimit -f`) at p0/index.html; {out} is unchanged (the new files were removed)",
        "hint: Free some space or raise the limit, then build again.",
    ]
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public"]


def test_item11_full_disk_message(tmp_path: Path):
    import errno

    from publisher.publish.writer import WriteError

    error = WriteError.of(OSError(errno.ENOSPC, "No space left on device"), "a.html", tmp_path)
    assert str(error) == (
        f"the build could not be written: the disk is full (ENOSPC) at a.html; {tmp_path} "
        "is unchanged (the new files were removed)"
    )
    odd = WriteError.of(OSError(errno.EIO, "Input/output error"), "b.html", tmp_path)
    assert "Input/output error (EIO) at b.html" in str(odd)


def test_item11_text_that_cannot_be_encoded_is_refused_with_its_owner():
    with pytest.raises(
        OutputConflictError, match=r"'\\ud800', which is not a character, from posts/a\.md"
    ):
        OutputTree().add("a/index.html", "x\ud800", owner="posts/a.md")
