"""Topic routes for the subscribers' record types, registered on import by every module that emits them.

Kept out of ``subscribers.records`` because ``qwatch.events`` imports that module and ``qwatch.topics`` imports
``qwatch.events``: registering there would make the import order matter.
"""

from __future__ import annotations

from qwatch.topics import ALERTS, INVENTORY, register_route
from subscribers.records import Alert, InventoryRecord

register_route(InventoryRecord, INVENTORY)
register_route(Alert, ALERTS)
