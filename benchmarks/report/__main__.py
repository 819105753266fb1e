"""`python -m benchmarks.report RESULTS.json [--readme README.md]`: see benchmarks/report/readme.py."""
from export.cli import run_command

from .readme import main

if __name__ == "__main__":
    run_command(main, "benchmarks.report")
