"""What happens to tickets with time: the due-deadline scan, the notification outbox and its channels, the loops.

It runs beside the store in every `alertdesk run` and `alertdesk store`, never in a webhook's path; imports core only.
"""
