"""Test doubles and sample builders: the local PyPI and synthetic observations.

Imported by tests, benchmarks and the demo only, never by product code (tests/system/test_layout.py).
"""
