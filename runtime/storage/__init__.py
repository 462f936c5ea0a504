"""Storage: locations on any pyarrow.fs filesystem, checkpoints, and the write-ahead log."""

__all__: list[str] = []
