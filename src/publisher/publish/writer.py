"""Write the built site atomically: all files into a fresh folder, then one swap.

A build gathers every output file in memory first (``OutputTree``), refusing two
files at one path (as Pelican's writer does) and any path that would leave the
output folder (A21). ``commit`` writes the tree into a sibling temporary folder
and swaps it with the old output in one step (Linux ``renameat2`` with
``RENAME_EXCHANGE``; elsewhere two renames with recovery at the next build), so
a build that fails, runs out of disk or is killed leaves the previous output
byte-identical (G10, G11).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from publisher.errors import PublisherError

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputConflictError(PublisherError):
    """Two outputs claim one path, or a path escapes the output folder."""


@dataclass(frozen=True)
class WriteSummary:
    files: int
    bytes: int


class OutputTree:
    """Files to write, by site-relative POSIX path."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._owners: dict[str, str] = {}

    def add(self, path: str, data: bytes | str, owner: str = "") -> None:
        """Add one file; ``owner`` names what produced it, for conflict messages."""
        clean = _safe_relative(path)
        key = unicodedata.normalize("NFC", clean).casefold()
        if key in self._owners:
            raise OutputConflictError(
                f"two outputs would be written to {clean}: {self._owners[key] or 'a page'} "
                f"and {owner or 'a page'}",
                hint="Give one of the posts another 'slug:'.",
            )
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate reached a page (item 11)
                raise OutputConflictError(
                    f"{clean} holds {data[exc.start]!r}, which is not a character, "
                    f"from {owner or 'a page'}",
                    hint="Remove the \\u escape that produced it.",
                ) from None
        self._owners[key] = owner
        self._files[clean] = data

    def __len__(self) -> int:
        return len(self._files)

    def items(self) -> list[tuple[str, bytes]]:
        return sorted(self._files.items())

    def get(self, path: str) -> bytes | None:
        return self._files.get(path)


def _safe_relative(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in path:
        raise OutputConflictError(f"output path {path!r} would leave the output folder")
    return pure.as_posix()


def commit(tree: OutputTree, output: Path) -> WriteSummary:
    """Write ``tree`` to a fresh folder beside ``output`` and swap it in.

    A full disk or a file-size limit while writing raises ``WriteError``, which says
    so and that ``output`` is unchanged: the swap never happened (G10).
    """
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    _recover_interrupted_swap(output)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".build-{output.name}-", dir=output.parent))
    except OSError as exc:
        raise WriteError.of(exc, str(output.parent), output) from None
    try:
        total = _write_all(tree, staging)
        _swap_in(staging, output)
    except _WriteFailed as failed:
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteError.of(failed.error, failed.relative, output) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return WriteSummary(files=len(tree), bytes=total)


class WriteError(PublisherError):
    """The new output could not be written; the previous output is untouched."""

    _REASONS = {  # noqa: RUF012
        errno.ENOSPC: "the disk is full (ENOSPC)",
        errno.EDQUOT: "the disk quota is used up (EDQUOT)",
        errno.EFBIG: "a file is over the file-size limit (EFBIG; see `ulimit -f`)",
        errno.ENAMETOOLONG: "a file name is too long (ENAMETOOLONG)",
    }

    @classmethod
    def of(cls, error: OSError, relative: str, output: Path) -> WriteError:
        reason = cls._REASONS.get(error.errno or 0)
        if reason is None:
            code = errno.errorcode.get(error.errno or 0, "OSError")
            reason = f"{error.strerror or error} ({code})"
        return cls(
            f"the build could not be written: {reason} at {relative}; "
            f"{output} is unchanged (the new files were removed)",
            hint="Free some space or raise the limit, then build again."
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            else "Fix the cause above, then build again.",
        )


class _WriteFailed(Exception):
    def __init__(self, relative: str, error: OSError) -> None:
        super().__init__(relative)
        self.relative = relative
        self.error = error


def _write_all(tree: OutputTree, root: Path) -> int:
    total = 0
    for relative, data in tree.items():
        target = root / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise _WriteFailed(relative, exc) from exc
        total += len(data)
    root.chmod(0o755)
    return total


def _old_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.old")


def _swap_in(staging: Path, output: Path) -> None:
    if not output.exists():
        os.replace(staging, output)
        return
    if _exchange(staging, output):
        shutil.rmtree(staging)  # now holds the previous output
        return
    old = _old_path(output)
    shutil.rmtree(old, ignore_errors=True)
    os.replace(output, old)
    os.replace(staging, output)
    shutil.rmtree(old, ignore_errors=True)


def _recover_interrupted_swap(output: Path) -> None:
    """A kill between the two fallback renames leaves only ``.NAME.old``: put it back."""
    old = _old_path(output)
    if old.exists() and not output.exists():
        os.replace(old, output)
    for stale in output.parent.glob(f".build-{output.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    with contextlib.suppress(Exception):
        result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        return bool(result == 0)
    return False
