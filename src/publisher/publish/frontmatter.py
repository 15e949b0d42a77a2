"""Split a post into front matter and body, and parse the front matter strictly.

python-frontmatter silently returns ``{}`` for a BOM, a missing closing ``---``
or list-shaped front matter, and PyYAML's YAML 1.1 resolvers turn ``no`` into
False, ``12:30`` into 750 and ``1.10`` into 1.1 (RELIABILITY L6, A1-A12). So:

- the split is done here, by lines, so every error has a line number;
- YAML is parsed with a SafeLoader that has *no implicit resolvers*: every plain
  scalar stays the text the editor typed, and the post schema (``content.py``)
  decides what it means, by field;
- duplicate keys, aliases (billion-laughs, A12) and non-mapping documents are
  errors, each with the line where it happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from publisher.publish.safetext import SURROGATES

MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_NESTING = 64  # lists and mappings inside each other; front matter needs two or three
_FENCE = re.compile(r"^---[ \t]*$")
_END_FENCE = re.compile(r"^(---|\.\.\.)[ \t]*$")


class FrontMatterError(ValueError):
    """A front-matter problem at a line (1-based, in the post file) and optional column."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Field:
    """One top-level front-matter value and the file line it starts on."""

    value: Any
    line: int


@dataclass(frozen=True)
class Document:
    """A post split in two: its front matter fields and its Markdown body."""

    fields: dict[str, Field]
    body: str
    body_line: int  # file line where the body starts, for Markdown errors


def split(text: str) -> Document:
    """Split ``text`` (already decoded, BOM removed) into fields and body."""
    lines = text.splitlines(keepends=True)
    if not lines or not _FENCE.match(lines[0].rstrip("\r\n")):
        raise FrontMatterError(
            "no front matter: a post starts with a '---' line, then 'title:' and 'date:'", 1
        )
    for index in range(1, len(lines)):
        if _END_FENCE.match(lines[index].rstrip("\r\n")):
            yaml_text = "".join(lines[1:index])
            body = "".join(lines[index + 1 :])
            return Document(parse_fields(yaml_text, first_line=2), body, index + 2)
    raise FrontMatterError("front matter opened but never closed: add a '---' line after it", 1)


class _StrictConstruction:
    """Construction rules shared by both loaders: text keys, no duplicates."""

    first_line = 1  # file line of the YAML text's first line, for messages

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            if not isinstance(key, str):
                raise yaml.MarkedYAMLError(
                    problem="keys must be plain text (quote a value that starts with '{' or '[')",
                    problem_mark=key_node.start_mark,
                )
            if key in seen:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r} (first on line {self.first_line + seen[key]})",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc,no-any-return]


class _StrictLoader(_StrictConstruction, yaml.SafeLoader):
    """Pure-Python SafeLoader without implicit resolvers, aliases or duplicate keys.

    Slower than libyaml, but it sees alias events, so its errors point at the alias.
    """

    yaml_implicit_resolvers = {}  # noqa: RUF012

    depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in front matter",
                problem_mark=event.start_mark,
            )
        if self.depth >= MAX_NESTING:
            # PyYAML's composer recurses once per level: stop long before RecursionError.
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {MAX_NESTING} levels deep; use plain 'key: value' lines",
                problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_FAST_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_StrictConstruction, _FAST_BASE):  # type: ignore[misc]
    """The same rules on libyaml's parser (about 7x faster); aliases are found by a tree walk."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012


def _construct_plain_or_null(loader: yaml.BaseLoader, node: ScalarNode) -> str:
    # Without resolvers every untagged scalar is a string; an empty value is "".
    text = str(loader.construct_scalar(node))
    surrogate = SURROGATES.search(text)
    if surrogate:
        # "\ud800" is valid YAML but no character: it would fail when the page is written.
        raise FrontMatterError(
            f"U+{ord(surrogate.group()):04X} is a lone surrogate, not a character; "
            "fix the \\u escape",
            getattr(loader, "first_line", 1) + node.start_mark.line,
            node.start_mark.column + 1,
        )
    return text


for _loader in (_StrictLoader, _FastLoader):
    _loader.add_constructor("tag:yaml.org,2002:str", _construct_plain_or_null)


class _NeedsSlowPath(Exception):
    """The fast parse hit something whose exact message the pure-Python loader gives."""


def parse_fields(yaml_text: str, first_line: int) -> dict[str, Field]:
    """Parse a front-matter block that starts at file line ``first_line``."""
    if len(yaml_text.encode("utf-8")) > MAX_FRONT_MATTER_BYTES:
        raise FrontMatterError(
            f"front matter is larger than {MAX_FRONT_MATTER_BYTES // 1024} KB", first_line
        )
    try:
        try:
            return _parse(_FastLoader, yaml_text, first_line, walk_aliases=True)
        except (_NeedsSlowPath, FrontMatterError):
            # Any problem is re-parsed by the pure-Python loader so messages are identical.
            return _parse(_StrictLoader, yaml_text, first_line, walk_aliases=False)
    except RecursionError:
        # MAX_NESTING should stop this first; a RecursionError never leaves the reader.
        raise FrontMatterError("front matter is nested too deeply to read", first_line) from None


def _parse(
    loader_class: type, yaml_text: str, first_line: int, *, walk_aliases: bool
) -> dict[str, Field]:
    loader = loader_class(yaml_text)
    loader.first_line = first_line
    try:
        root = loader.get_single_node()
        if root is None:
            return {}
        if not isinstance(root, MappingNode):
            raise FrontMatterError(
                f"front matter must be a mapping of 'key: value' lines, got a {_node_kind(root)}",
                first_line + root.start_mark.line,
            )
        if walk_aliases and _needs_slow_path(root):
            raise _NeedsSlowPath
        return _fields_of(loader, root, first_line)
    except yaml.MarkedYAMLError as exc:
        if walk_aliases:
            raise _NeedsSlowPath from None
        raise _located(exc, first_line) from None
    finally:
        loader.dispose()


def _needs_slow_path(root: Node) -> bool:
    """True when a node appears twice (libyaml resolved an alias, A12) or nests too deeply.

    libyaml itself accepts 1,000 levels; the pure-Python loader gives the located error.
    """
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen or depth >= MAX_NESTING:
            return True
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))
        elif isinstance(node.value, list):
            stack.extend((child, depth + 1) for child in node.value)
    return False


def _fields_of(loader: Any, root: MappingNode, first_line: int) -> dict[str, Field]:
    loader.construct_mapping(root, deep=True)  # runs the duplicate-key check
    fields: dict[str, Field] = {}
    for key_node, value_node in root.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise FrontMatterError(
                f"keys must be text, got {key!r}", first_line + key_node.start_mark.line
            )
        value = loader.construct_object(value_node, deep=True)
        fields[key] = Field(value, first_line + key_node.start_mark.line)
    return fields


def _node_kind(node: Node) -> str:
    return {"SequenceNode": "list", "ScalarNode": "single value"}.get(type(node).__name__, "value")


def _located(exc: yaml.MarkedYAMLError, first_line: int) -> FrontMatterError:
    mark = exc.problem_mark or exc.context_mark
    if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
        # "end of stream" points past the block; where the open construct began helps (A3).
        mark = exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        problem = f"{exc.context}: {exc.problem}"
    if mark is None:
        return FrontMatterError(f"invalid YAML: {problem}", first_line)
    return FrontMatterError(f"invalid YAML: {problem}", first_line + mark.line, mark.column + 1)
