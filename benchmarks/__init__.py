"""Benchmarks: each script measures one figure against a baseline taken in the same run and ends
with one JSON line. Every one runs from the repository root both as a file and as a module
(``python benchmarks/sweep.py`` = ``python -m benchmarks.sweep``) and has a ``--smoke`` size that
runs in seconds; ``python -m benchmarks.smoke`` runs them all that way (CI)."""
