"""The command-line plumbing every training and benchmark command shares (`python -m export.*`,
`python -m benchmarks.*`): a usage line that names the command as it is typed (not `default.py`),
defaults shown beside each option's help, and errors as one line instead of a traceback.

No torch here: benchmarks import it too, and their `--help` should come back at once.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable

from radedge.errors import RadEdgeError


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and `(default: ...)` after each option's help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # A default of None or False says nothing ("default: None"): show only real defaults.
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def command_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser whose usage line reads `python -m MODULE` (what the user typed)."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc, formatter_class=HelpFormatter)


def run_command(main: Callable[[], int | None], module: str) -> None:
    """Run a command's `main()` and exit with its code; a missing file, a bad value or a failed
    check is one line on stderr and exit 2 (RADEDGE_TRACEBACK=1 adds the traceback)."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"python -m {module}: interrupted", file=sys.stderr)
        sys.exit(130)
    except (RadEdgeError, OSError, ValueError) as exc:
        if os.environ.get("RADEDGE_TRACEBACK"):
            traceback.print_exc()
        print(f"python -m {module}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
