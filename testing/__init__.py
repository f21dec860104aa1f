"""Test doubles and sample builders: the local PyPI and synthetic observations.

Imported by tests, benchmarks and the demo only, never by product code (tests/test_layout.py).
"""
