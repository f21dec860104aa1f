"""The CI gate: lockfiles in, a verdict that fails closed out (``qwatch gate``)."""
