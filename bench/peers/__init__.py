"""What userbase is compared with. Bench-only code: nothing here is part of the package."""
