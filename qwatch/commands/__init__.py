"""Subcommands of ``qwatch`` that belong to the platform itself (broker, topics, tail)."""
