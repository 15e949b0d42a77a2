"""The folders are the architecture: this meta-test keeps the imports pointing downhill.

publish/ (pure) and store/ know nothing of delivery, scheduling, the web or the CLI; deliver/ knows
nothing of scheduling, the web or the CLI. A new import that breaks a rule fails here with its line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "publisher"

# subpackage -> the subpackages it may not import from
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "config": ("publish", "store", "deliver", "schedule", "web", "preview", "cli"),
    "publish": ("store", "deliver", "schedule", "web", "preview", "cli"),
    "store": ("publish", "deliver", "schedule", "web", "preview", "cli"),
    "deliver": ("schedule", "web", "preview", "cli"),
    "schedule": ("web", "preview", "cli"),
    "web": ("schedule", "cli"),
    "preview": ("store", "deliver", "schedule", "web", "cli"),
    # web may import inbound for the webhook routes; deliver imports inbound.verp (pure).
    "inbound": ("schedule", "web", "preview", "cli"),
}

# folder -> modules it may not import although its layer may: the web service gets the site's
# categories from the composition root (cli/web.py) and never reads posts at request time.
# A future web/editor/, which edits posts, is exempt.
FORBIDDEN_MODULES: dict[str, tuple[str, ...]] = {
    "web": ("publish.content", "publish.frontmatter", "publish.build"),
}
EXEMPT = ("web/editor",)

# The composition root (publisher/wiring.py) builds stores, transports, signers and composers for
# the commands; only cli/ imports it, everything below is handed what it needs.
COMPOSITION_ROOT = "wiring"
MAY_IMPORT_THE_ROOT = ("cli",)


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "publisher":  # from publisher import deliver
                found.extend((node.lineno, f"publisher.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, node.module))
                if node.module.startswith("publisher."):  # from publisher.publish import content
                    found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return found


def layer_violations(package: Path) -> list[str]:
    """Every import that points uphill, as `path:line: layer imports module`."""
    problems = []
    for source in sorted(package.rglob("*.py")):
        parts = source.relative_to(package).parts
        layer = parts[0] if len(parts) > 1 else ""
        banned = FORBIDDEN.get(layer, ())
        exempt = any(source.relative_to(package).as_posix().startswith(e + "/") for e in EXEMPT)
        banned_modules = () if exempt else FORBIDDEN_MODULES.get(layer, ())
        reported: set[int] = set()  # one problem per import statement
        for line, module in _imported_modules(ast.parse(source.read_text(encoding="utf-8"))):
            names = module.split(".")
            inner = ".".join(names[1:])
            uphill = len(names) > 1 and names[1] in banned
            off_limits = any(inner == m or inner.startswith(m + ".") for m in banned_modules)
            root = names[1:2] == [COMPOSITION_ROOT] and layer not in MAY_IMPORT_THE_ROOT
            if root and parts == (f"{COMPOSITION_ROOT}.py",):
                root = False  # the root itself
            if names[0] == "publisher" and (uphill or off_limits or root) and line not in reported:
                reported.add(line)
                rel = source.relative_to(package.parent)
                problems.append(f"{rel}:{line}: {layer}/ imports {module}")
    return sorted(set(problems))


def test_imports_point_downhill() -> None:
    assert layer_violations(PACKAGE) == []


def test_the_layer_test_catches_an_uphill_import(tmp_path: Path) -> None:
    (tmp_path / "publish").mkdir()
    (tmp_path / "publish" / "pages.py").write_text("from publisher.deliver import sender\n")
    assert layer_violations(tmp_path) == [
        f"{tmp_path.name}/publish/pages.py:1: publish/ imports publisher.deliver"
    ]


def test_only_the_cli_imports_the_composition_root(tmp_path: Path) -> None:
    for folder in ("cli", "schedule", "deliver"):
        (tmp_path / folder).mkdir()
    (tmp_path / "cli" / "send.py").write_text("from publisher import wiring\n")
    (tmp_path / "schedule" / "runner.py").write_text("from publisher.wiring import composer\n")
    (tmp_path / "deliver" / "sender.py").write_text("import publisher.wiring\n")
    (tmp_path / "clock.py").write_text("from publisher import wiring\n")
    (tmp_path / "wiring.py").write_text("from publisher.wiring import Warn\n")
    assert layer_violations(tmp_path) == [
        f"{tmp_path.name}/clock.py:1: / imports publisher.wiring",
        f"{tmp_path.name}/deliver/sender.py:1: deliver/ imports publisher.wiring",
        f"{tmp_path.name}/schedule/runner.py:1: schedule/ imports publisher.wiring",
    ]


def test_the_web_may_not_read_posts_except_its_editor(tmp_path: Path) -> None:
    (tmp_path / "web" / "editor").mkdir(parents=True)
    (tmp_path / "web" / "app.py").write_text(
        "from publisher.publish.content import read_posts\n"
        "from publisher.publish.templating import make_environment\n"
        "import publisher.publish.build\n"
        "from publisher.publish import frontmatter, site\n"
    )
    (tmp_path / "web" / "editor" / "save.py").write_text("from publisher.publish import content\n")
    (tmp_path / "web" / "editor" / "load.py").write_text(
        "from publisher.publish.frontmatter import parse\n"
    )
    assert layer_violations(tmp_path) == [
        f"{tmp_path.name}/web/app.py:1: web/ imports publisher.publish.content",
        f"{tmp_path.name}/web/app.py:3: web/ imports publisher.publish.build",
        f"{tmp_path.name}/web/app.py:4: web/ imports publisher.publish.frontmatter",
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_every_layer_is_a_folder(layer: str) -> None:
    assert (PACKAGE / layer / "__init__.py").is_file()
