"""`python -m benchmarks.report RESULTS.json [--readme README.md]`: see benchmarks/report/readme.py."""
import sys

from .readme import main

if __name__ == "__main__":
    sys.exit(main())
