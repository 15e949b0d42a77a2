"""``[editor].git_commit``: each save becomes a git commit with the editor as author.

Only when the site folder is the top of a git repository (``<site>/.git``
exists). git runs without a shell, with fixed arguments and the file paths
after ``--``; the author and committer are the editor (name and email from
``publisher editors add``). A failed commit never undoes a save: the file is
written first, and the caller shows the returned warning.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from publisher.config import Config
from publisher.store.editors import Editor

GIT_TIMEOUT_SECONDS = 30


def commit_paths(config: Config, editor: Editor, paths: Sequence[Path], message: str) -> str | None:
    """Commit ``paths`` (changed, added or removed); None, or a warning to show."""
    if not config.editor.git_commit or not (config.root / ".git").exists():
        return None
    git = shutil.which("git")
    if git is None:
        return "git이 설치되어 있지 않아 커밋하지 못했습니다 (저장은 되었습니다)."
    relative = [p.relative_to(config.root).as_posix() for p in paths]
    email = editor.email or f"{editor.name}@editor.invalid"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": editor.name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": editor.name,
        "GIT_COMMITTER_EMAIL": email,
    }
    try:
        for command in (
            [git, "-C", str(config.root), "add", "-A", "--", *relative],
            [git, "-C", str(config.root), "commit", "-q", "-m", message, "--", *relative],
        ):
            subprocess.run(  # noqa: S603 (fixed arguments, no shell)
                command, env=env, check=True, capture_output=True, timeout=GIT_TIMEOUT_SECONDS
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        text = detail.decode("utf-8", "replace").strip().splitlines()
        return f"git 커밋에 실패했습니다 (저장은 되었습니다): {text[-1] if text else exc}"
    return None
