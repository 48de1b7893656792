"""bench/run's sections, one module each: KEY (the --only name), TITLE and run(b, R)."""
