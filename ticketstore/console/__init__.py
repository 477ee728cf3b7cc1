"""The operators' web console (CONTRACT §6): sign-in, the queue, a ticket and its actions, the dashboard.

Server-rendered pages over the core and the API's read queries (console → api → core, never back).
"""
