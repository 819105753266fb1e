"""What a run of `python -m benchmarks` produces besides its numbers: the results file's schema,
the terminal tables, the PNG plots and the README's performance block (`python -m benchmarks.report`)."""
