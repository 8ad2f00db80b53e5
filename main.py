"""The tutorial's entry point: `uvicorn main:app --reload` serves userbase."""

from userbase.app import app

__all__ = ["app"]
