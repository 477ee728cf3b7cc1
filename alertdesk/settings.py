"""Every setting, read once from `ALERTDESK_*` environment variables (and CLI flags) at the entry point."""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from alertdesk.secret_files import SecretFiles, file_variable
from normalizers.schema import Source

PREFIX = "ALERTDESK_"

# The settings that may also come from a file named by ALERTDESK_<NAME>_FILE: whatever holds a credential.
SECRETS = (
    "database_url",
    "broker_url",
    "nagios_token",
    "zabbix_token",
    "solarwinds_token",
    "api_token",
    "api_read_token",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on (/metrics, /healthz, /readyz too)")
    database_url: str = Field(
        "sqlite+aiosqlite:///alertdesk.db",
        description="SQLAlchemy URL: the default is a SQLite file in the working directory; "
        "postgresql+asyncpg://user@host/db for distributed mode",
    )
    database_schema: str | None = Field(None, description="PostgreSQL schema to use (default: the search_path)")
    broker_url: str | None = Field(None, description="amqp://… to run distributed; unset: embedded hand-off")
    broker_prefix: str = Field(
        "alertdesk", pattern=r"^[A-Za-z0-9_.-]+$", description="name prefix of alertdesk's exchanges and queues"
    )
    partitions: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="partition queues per stream (unset: as many as the broker has, else 2); fixed once declared",
    )
    worker_index: int = Field(
        0, ge=0, description="dedup/store: this worker's index; it owns partitions p with p % count == index"
    )
    worker_count: int = Field(1, ge=1, description="dedup/store: how many workers of this stage share the partitions")
    publish_linger_ms: float = Field(
        5.0,
        ge=0,
        description="ingest: least time (ms) between the starts of a partition's publish rounds, so that at "
        "moderate load a message carries several alerts (0: publish as soon as the last one confirmed)",
    )
    window_count: int = Field(200, ge=1, description="dedup/store: most messages handled together in one window")
    window_ms: float = Field(20.0, ge=0, description="dedup: longest wait (ms) for a window to fill")
    store_window_ms: float = Field(
        0.0,
        ge=0,
        description="store: longest wait (ms) for a window to fill (0: what arrived while the last committed)",
    )
    prefetch: int = Field(
        2000,
        ge=1,
        description="dedup/store: unacked messages held per partition (a holding dedup: at least HOLD_MAX × 4/3)",
    )
    # dedup's hold (dedup/hold.py): a key's plain repeats are held back and leave as one command. The storm
    # settings of earlier versions (ALERTDESK_STORM_RATE, ALERTDESK_STORM_WINDOW_MS) are ignored if still set.
    hold_count: int = Field(
        50, ge=1, description="dedup: a key's held repeats that leave together (1: hold nothing); sets rows per alert"
    )
    hold_seconds: float = Field(
        30.0, gt=0, description="dedup: longest a repeat is held, i.e. how far an open ticket's count may lag"
    )
    hold_quiet_seconds: float = Field(
        1.0, gt=0, description="dedup: everything held leaves once no alert arrived for this long (a storm ended)"
    )
    hold_max: int = Field(
        30_000, ge=1, description="dedup: most alerts a worker holds (memory); oldest keys leave first"
    )
    takeover_interval: float = Field(
        2.0, gt=0, description="dedup/store: seconds between checks of the neighbour worker (takeover, handback)"
    )
    policy: Path | None = Field(None, description="escalation policy YAML (default: the built-in policy)")
    nagios_token: SecretStr | None = Field(None, description="token required on /webhooks/nagios")
    zabbix_token: SecretStr | None = Field(None, description="token required on /webhooks/zabbix")
    solarwinds_token: SecretStr | None = Field(None, description="token required on /webhooks/solarwinds")
    api_token: SecretStr | None = Field(None, description="Bearer token for operator actions on /api")
    api_token_name: str = Field(
        "operator", description="the operator name bound to ALERTDESK_API_TOKEN (history actor)"
    )
    api_read_token: SecretStr | None = Field(None, description="optional read-only Bearer token for /api")
    max_body_bytes: int = Field(1_048_576, ge=1, description="largest webhook body accepted (413 above)")
    publish_timeout: float = Field(5.0, gt=0, description="seconds to wait for durability before answering 503")
    retention_days: float = Field(7.0, gt=0, description="days alert ids are remembered to drop redeliveries")
    ticket_retention_days: float | None = Field(
        None,
        ge=1,
        description="delete tickets resolved or closed longer ago than this, with their history (unset: keep)",
    )
    max_batch: int = Field(1024, ge=1, description="most alerts folded into one store transaction")
    max_pending: int = Field(
        2048,
        ge=1,
        description="run and ingest: most alerts waiting for the store (run) or the broker (ingest); beyond it webhooks get 503 at once",
    )
    store_process: bool = Field(
        True, description="run (SQLite file): write tickets in a child process, so the server has a core of its own"
    )
    session_hours: float = Field(12.0, gt=0, description="console: hours a sign-in lasts")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="base URL people reach the console at (links in notifications; https: Secure cookies)",
    )
    auth_proxy_header: str | None = Field(
        None, description="console: header naming the person, set by a single-sign-on proxy (e.g. X-Forwarded-User)"
    )
    auth_proxy_from: str = Field(
        "127.0.0.1/32,::1/128", description="console: comma-separated CIDRs the auth proxy header is trusted from"
    )
    auth_proxy_role: Literal["viewer", "operator"] = Field(
        "viewer", description="console: role of a proxy user who has no account"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    access_log: bool = Field(False, description="log every HTTP request (tokens redacted)")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object a line for a log collector"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI flags first, then the `_FILE` variables, then the plain ones (both forms of one is refused)."""
        flags = init_settings.init_kwargs.keys() if isinstance(init_settings, InitSettingsSource) else ()
        files = SecretFiles(settings_cls, SECRETS, environ=os.environ, skip=flags)
        return init_settings, files, env_settings

    @field_validator("auth_proxy_from")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ip_network(part.strip(), strict=False)  # ValueError names the bad one
        return value

    def proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(p.strip(), strict=False) for p in self.auth_proxy_from.split(",") if p.strip())

    def source_tokens(self) -> dict[Source, str]:
        tokens = {
            Source.NAGIOS: self.nagios_token,
            Source.ZABBIX: self.zabbix_token,
            Source.SOLARWINDS: self.solarwinds_token,
        }
        # An empty variable (ALERTDESK_NAGIOS_TOKEN=) means no token, not a token that matches nothing.
        return {
            source: token.get_secret_value() for source, token in tokens.items() if token and token.get_secret_value()
        }


def describe() -> str:
    """The settings table for `alertdesk --help`."""
    lines = ["environment (every setting; a CLI flag overrides where one exists):"]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else repr(field.default)
        lines.append(f"  {PREFIX}{name.upper():<22} {field.description} [default: {default}]")
        if name in SECRETS:
            variable = file_variable("", name)
            lines.append(f"  {PREFIX}{variable:<22} or a file holding it (Docker/Kubernetes secrets), not both")
    return "\n".join(lines)
