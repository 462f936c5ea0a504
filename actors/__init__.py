"""The Ray edge: every Ray call of Troupe lives in this package."""

__all__: list[str] = []
