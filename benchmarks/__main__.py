"""`python -m benchmarks`: see benchmarks/run.py."""
from export.cli import run_command

from .run import main

if __name__ == "__main__":  # not when a spawned worker re-imports this module as __mp_main__
    run_command(main, "benchmarks")
