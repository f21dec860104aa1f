"""Consumers at the end of the flow: what turns observed events into decisions for a team's own projects."""
