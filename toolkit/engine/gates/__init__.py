"""Health gates: pure functions of observed state that return a `Verdict` with a reason a person can read."""
