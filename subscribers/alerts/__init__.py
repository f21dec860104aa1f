"""Alerts and webhooks: transitions matched against registered inventories (``qwatch alerts``)."""
