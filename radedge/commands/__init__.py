"""One module per `radedge` subcommand (see radedge/cli.py)."""
