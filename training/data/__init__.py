"""Training data: the online episode replay (and, as they come, offline datasets and their importers)."""
