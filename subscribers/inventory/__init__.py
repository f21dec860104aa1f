"""Registered inventories: lockfiles parsed and published on ``qwatch.inventory.v1`` (``qwatch inventory``)."""
