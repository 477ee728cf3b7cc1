"""The fold: a key's events, in arrival order, become as few ticket commands as keep the same meaning.

Consecutive problems of one episode become one "problem ×k" command (latest payload, peak severity, every alert
id); any other event (recovery, acknowledgement, downtime, …) keeps its place, so order-sensitive rules still
see the events in the order they arrived. During a storm this is what keeps database writes far below the
alert rate. Pure: the embedded writer and the RabbitMQ dedup worker both call it.
"""

from __future__ import annotations

from collections.abc import Iterable

from normalizers.schema import Alert, Kind, TicketCommand, highest


def fold(alerts: Iterable[Alert]) -> list[TicketCommand]:
    """Fold `alerts` (arrival order) into commands; per key the order is kept, the same alert id counts once."""
    commands: list[TicketCommand] = []
    open_run: dict[str, int] = {}  # dedup_key -> index in `commands` of a problem run still accepting repeats
    seen: set[str] = set()
    for alert in alerts:
        if alert.id in seen:
            continue
        seen.add(alert.id)
        index = open_run.get(alert.dedup_key)
        if index is not None and alert.kind is Kind.PROBLEM:
            run = commands[index]
            if run.alert.episode_id == alert.episode_id:
                commands[index] = TicketCommand.model_construct(  # from validated parts
                    alert=alert,
                    alert_ids=(*run.alert_ids, alert.id),
                    peak_severity=highest(run.peak_severity, alert.severity),
                    first_received_at=run.first_received_at,
                )
                continue
        commands.append(TicketCommand.single(alert))
        if alert.kind is Kind.PROBLEM:
            open_run[alert.dedup_key] = len(commands) - 1
        else:
            open_run.pop(alert.dedup_key, None)
    return commands
