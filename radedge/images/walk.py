"""The folder walk used by score-dicoms lives in `radedge.io.walk` (shared with the report readers)."""
from ..io.walk import Entry, walk_entries, walk_files

__all__ = ["Entry", "walk_entries", "walk_files"]
