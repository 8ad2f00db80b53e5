"""userbase: the users service of the FastAPI + SQLAlchemy tutorial, built for real."""

__version__ = "0.1.0"
