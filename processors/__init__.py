"""Processors: keep per-package state and turn observations into transitions, exactly once."""
