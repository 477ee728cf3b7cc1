"""RabbitMQ as every distributed stage uses it: the topology, the supervised connection, confirmed publishing,
partition ownership and takeover, consuming in windows with fencing, dead letters.

It lives under `dedup/` because dedup is the RabbitMQ-backed stage and the layout has no shared package beside the
four stages; ingest's publisher and the store worker (`ticketstore/worker.py`) use it from here.
"""
