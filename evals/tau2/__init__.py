"""τ²-bench (mock, airline, retail) as Troupe suites: converter, re-implemented tools, grader, oracle."""
