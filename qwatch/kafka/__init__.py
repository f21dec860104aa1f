"""Kafka plumbing shared by every stage: clients, topic admin, transactional appends, reading topics."""
