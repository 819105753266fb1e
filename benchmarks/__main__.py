"""`python -m benchmarks`: see benchmarks/run.py."""
import sys

from .run import main

if __name__ == "__main__":  # not when a spawned worker re-imports this module as __mp_main__
    sys.exit(main())
