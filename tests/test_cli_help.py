"""Every `userbase` command explains itself with --help and shows an example."""

import pytest
from typer.testing import CliRunner

from userbase.cli import app

runner = CliRunner()

COMMANDS = [
    "migrate",
    "serve",
    "create-admin",
    "check",
    "import",
    "export",
    "send-mail",
    "resend-mail",
    "purge-mail",
    "reset-mfa",
]


def test_the_top_level_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "Example: " in result.output
    assert f"userbase {command}" in result.output
