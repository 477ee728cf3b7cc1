"""Trackers: alertdesk's tickets mirrored into ServiceNow, Jira and Zendesk, and their changes taken back.

Outbound calls drain the escalation outbox (rows `tracker:<name>`); inbound events arrive on /api/trackers/{name}.
"""
