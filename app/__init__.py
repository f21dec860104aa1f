"""The top floor: the ``qwatch`` command, ``up``, ``tail``, ``broker``, ``topics`` and the demo.

The only package that imports every stage; nothing imports it back (tests/system/test_layout.py).
"""
