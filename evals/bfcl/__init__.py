"""The Berkeley Function Calling Leaderboard (BFCL) as Troupe eval suites.

``python -m troupe.evals.bfcl.convert`` turns the data of the ``bfcl-eval`` wheel (a dev-time source,
not a dependency) into ``evals/suites/bfcl_<category>/``; the generated suites are committed.
"""
