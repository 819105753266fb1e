"""Engine builders for accelerators (DESIGN.md): `runtimes.tensorrt`. Part of the source checkout only."""
