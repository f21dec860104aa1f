"""Deterministic, seeded simulation of upstream PyPI and OpenSSF, checked against an independent reference model.

``upstream`` generates what happened (journal rows, what PyPI served at every moment, report history) from a seed;
``streams`` turns it into each ingestor's observation stream; ``reference`` computes, from the set of observations
alone, what processors/README.md (S1-S7) says must come out; ``harness`` runs the real core over interleavings and
compares. ``python -m tests.simulation.replay SEED`` replays one seed (from the repository root).
"""
