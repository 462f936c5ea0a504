"""Replay and fork recorded sessions from the lake (``troupe replay``, ``troupe fork``; docs/replay.md)."""
