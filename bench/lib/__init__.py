"""bench/run's library: what the sections share (see bench/run's docstring)."""
