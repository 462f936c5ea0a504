"""The event log: the producer-side buffer, the log core, the Parquet lake, metrics and summaries."""

__all__: list[str] = []
