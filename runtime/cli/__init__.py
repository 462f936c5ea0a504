"""The ``troupe`` command line."""

__all__: list[str] = []
