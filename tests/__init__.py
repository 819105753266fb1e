"""The test suite as a package, so its helpers import as `tests.<module>` without touching sys.path."""
