"""Meta-tests over the whole CLI: every command documents itself with an example."""

from __future__ import annotations

import shlex
import shutil
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import REPO
from publisher.cli import main as cli_module


def all_commands() -> list[tuple[str, click.Command]]:
    cli_module._register_commands()
    found: list[tuple[str, click.Command]] = [("publisher", cli_module.cli)]

    def walk(prefix: str, group: click.Group) -> None:
        for name, command in sorted(group.commands.items()):
            found.append((f"{prefix} {name}", command))
            if isinstance(command, click.Group):
                walk(f"{prefix} {name}", command)

    walk("publisher", cli_module.cli)
    return found


@pytest.mark.parametrize(
    ("name", "command"), all_commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_command_has_help_with_an_example(name: str, command: click.Command):
    args = [*name.split()[1:], "--help"]
    result = CliRunner().invoke(cli_module.cli, args)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"{name} --help has no example"
    assert command.help, f"{name} has no help text"


def test_errors_exit_1_with_message_and_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["publisher", "--site", str(tmp_path), "build"])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f"error: 1 configuration problem:\n{tmp_path}/config.toml: file not found" in err
    assert "hint: Run publisher in a site folder, or pass --site DIR." in err


# --- help examples and `publisher config` (issue 8, item 19) ----------------------------------

# Long-running servers: their examples are checked (options, and the post they name), not run.
SERVERS = {"serve", "preview", "web"}


def help_examples() -> list[str]:
    """Every example line of every command's --help, in order, without duplicates."""
    lines: dict[str, None] = {}
    for _name, command in all_commands():
        text = (command.help or "").split("Example", 1)[-1]
        for line in text.splitlines():
            line = line.split("  #", 1)[0].strip()
            if "publisher" in line:
                lines[line] = None
    return list(lines)


def test_every_help_example_works_on_the_sample_site(tmp_path: Path, monkeypatch):
    """Each example runs, in order, on a copy of the sample site (servers: checked only)."""
    from publisher.config import load_config
    from publisher.preview.page import find_post
    from publisher.publish.build import load_site

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "config.toml", site / "config.toml")
    shutil.copytree(REPO / "posts", site / "posts")
    shutil.copytree(REPO / "examples", site / "examples")  # the import examples name these files
    (site / "readers.csv").write_text("email\nnew@example.com\n", encoding="utf-8")
    monkeypatch.chdir(site)  # where "> reference.md" and "subscribers.csv" land
    for name in ("PUBLISHER_DATABASE_URL", "PUBLISHER_SMTP_URL", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    examples = help_examples()
    assert len(examples) > 15
    sample, _warnings = load_site(load_config(site, env={}), datetime.now(UTC))
    for example in examples:
        words = shlex.split(example)
        stdin = None
        if "|" in words:  # echo 'text' | publisher ...: the text on standard input
            at = words.index("|")
            assert words[0] == "echo", example
            stdin, words = " ".join(words[1:at]) + "\n", words[at + 1 :]
        while "=" in words[0]:  # VARIABLE=value publisher ...
            words.pop(0)
        assert words[0] == "publisher", example
        if "<" in words:  # publisher ... < FILE: the file on standard input
            at = words.index("<")
            stdin, words = (site / words[at + 1]).read_text(encoding="utf-8"), words[:at]
        args, _redirect, target = _split_redirect(words[1:])
        if "--category" in args:
            named = args[args.index("--category") + 1]
            assert named in {c.name for c in sample.categories}, f"{example}: no {named}"
        if args[0] in SERVERS or args == ["run"] or "--listen" in args:
            if args[0] == "preview":
                find_post(sample, args[1])  # raises for a post the sample does not have
            result = CliRunner().invoke(cli_module.cli, ["--site", str(site), *args, "--help"])
        else:
            result = CliRunner().invoke(cli_module.cli, ["--site", str(site), *args], input=stdin)
            if target:
                Path(target).write_text(result.output, encoding="utf-8")
        assert result.exit_code == 0, f"{example}\n{result.output}\n{result.exception!r}"


def _split_redirect(args: list[str]) -> tuple[list[str], str, str]:
    if ">" in args:
        at = args.index(">")
        return args[:at], ">", args[at + 1]
    return args, "", ""


def test_config_prints_the_settings_in_force_as_toml_that_reads_back_the_same(tmp_path: Path):
    import tomllib

    from publisher.config import SETTINGS, Config, load_config

    result = CliRunner().invoke(cli_module.cli, ["--site", str(REPO), "config"])
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.stdout)
    config = load_config(REPO)
    # Derived values are printed as the values in force, not as None or "".
    assert (
        printed["web"]["base_url"] == config.web_base_url == "https://blog.example.com/newsletter/"
    )
    assert printed["newsletter"]["list_id"] == config.list_id == "newsletter.blog.example.com"
    assert printed["database"]["url"] == config.database_url
    assert printed["newsletter"]["digest_time"] == config.newsletter.digest_time
    assert printed["newsletter"]["reply_to"] == ""  # not set, as config.toml says it
    # Read back as a config.toml, it is the same configuration, key by key.
    (tmp_path / "config.toml").write_text(result.stdout, encoding="utf-8")
    again = load_config(tmp_path)
    derived = {"[web].base_url", "[database].url", "[newsletter].list_id", "[newsletter].from_name"}
    for setting in SETTINGS:
        section = setting.section
        if setting.name in derived:
            continue  # explicit now; compared through what they derive below
        ours = getattr(getattr(config, section), setting.key)
        assert getattr(getattr(again, section), setting.key) == ours, setting.name

    def derive(c: Config) -> tuple[str, ...]:
        return (c.web_base_url, c.database_url, c.list_id, c.from_name)

    assert derive(again) == derive(config)
