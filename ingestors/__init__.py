"""Ingestors: poll one upstream each and emit typed observations; they observe, they never decide."""
