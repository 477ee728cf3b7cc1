"""The ticket store's core: tables, the ticket and its lifecycle, the policy's deadlines, the batch transaction.

`escalation/` (deadlines firing, notifications) and `api/` (operators over HTTP) build on it; it imports neither.
"""
