"""``qwatch serve``: a read-only status API, takedown feeds, a resumable SSE stream and an HTML page for analysts.

Layers, left to right: ``feeder`` (Kafka topics or a JSONL replay → the view), ``view`` (the SQLite materialized
view and its queries), ``query``/``cursor``/``present`` (pure: input validation, opaque cursors, the JSON, feed and
link shapes), ``hub`` (stream fan-out), ``app`` (Starlette routes and the guard middleware), ``cli`` (composition).
"""
