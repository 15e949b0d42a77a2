"""Meta-tests over the whole CLI: every command documents itself with an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

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
