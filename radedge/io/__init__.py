"""Input readers and output writers shared by the command-line pipelines."""
