"""Ray is an optional extra: importing radedge and running its CLI's help never imports it."""
from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import radedge, radedge.cli, radedge.pipelines.raydata
from radedge.cli import main
for argv in (["--help"], ["label-reports", "--help"], ["score-dicoms", "--help"]):
    sys.argv = ["radedge", *argv]
    try:
        main()
    except SystemExit:
        pass
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.") or m.startswith("pyarrow"))
print("LOADED", loaded, file=sys.stderr)
sys.exit(1 if loaded else 0)
"""


def test_import_and_help_do_not_import_ray() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
