"""Engine builders for accelerators (DESIGN.md): `runtimes.tensorrt`. Installed with radedge; imports
radedge, never the reverse."""
