"""The operators' side over HTTP: the JSON ticket API, its OpenAPI document, the read queries and request bodies.

Reads go straight to the database; actions go through the core store (`TicketStore.act`); imports core only.
"""
