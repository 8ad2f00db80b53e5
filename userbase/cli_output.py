"""Where the `userbase` command writes its messages: stderr, so stdout stays for data (export)."""

from rich.console import Console

# soft_wrap: a message (a path, a --skip to copy) stays on one line whatever the width.
console = Console(stderr=True, soft_wrap=True)
