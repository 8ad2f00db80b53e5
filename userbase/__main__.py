"""`python -m userbase` is the `userbase` command."""

from userbase.cli import app

app()
