"""The policy's `trackers:` section (CONTRACT §7): which ticketing systems alertdesk mirrors its tickets into.

Only the shape lives here, checked when the policy loads so a wrong section stops start-up with the field at
fault. Credentials are never written in the policy: a `*_file` (read at each call, so a fixed file works without
a restart) or a `*_env` variable name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Priority = Literal["P1", "P2", "P3", "P4", "P5"]

# Jira's default priority scheme, and Zendesk's four priorities.
JIRA_PRIORITIES: dict[str, str] = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low", "P5": "Lowest"}
ZENDESK_PRIORITIES: dict[str, str] = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low", "P5": "low"}
# ServiceNow computes priority from impact × urgency (1 high … 3 low); these pairs give back P1 … P5 in its
# default priority lookup rules (1×1 Critical, 1×2 High, 2×2 Moderate, 2×3 Low, 3×3 Planning).
SERVICENOW_IMPACT_URGENCY: dict[str, tuple[int, int]] = {
    "P1": (1, 1),
    "P2": (1, 2),
    "P3": (2, 2),
    "P4": (2, 3),
    "P5": (3, 3),
}


class Secret(BaseModel):
    """Where a secret is: exactly one of a file (read at each use) or an environment variable (read at start)."""

    model_config = ConfigDict(frozen=True)

    file: Path | None = None
    env: str | None = None


class Tracker(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["servicenow", "jira", "zendesk"]
    url: str = Field(pattern=r"^https?://[^/]+")
    user: str | None = None  # ServiceNow user, Jira Cloud account e-mail, Zendesk agent e-mail
    password_file: Path | None = None
    password_env: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    inbound_token_file: Path | None = None
    inbound_token_env: str | None = None
    # Jira
    project: str | None = None
    issue_type: str = "Incident"
    api_version: Literal[2, 3] | None = None
    flavour: Literal["cloud", "datacenter"] | None = None
    priorities: dict[Priority, str] = Field(default_factory=dict)  # alertdesk priority → remote priority name
    # ServiceNow
    close_code: str = "Solved (Permanently)"
    timeout: float = Field(default=10.0, gt=0)  # seconds per call

    @model_validator(mode="after")
    def _complete(self) -> Tracker:
        secrets = [
            n for n in ("password_file", "password_env", "token_file", "token_env") if getattr(self, n) is not None
        ]
        if len(secrets) != 1:
            raise ValueError("give exactly one of password_file, password_env, token_file, token_env")
        if self.inbound_token_file is not None and self.inbound_token_env is not None:
            raise ValueError("give one of inbound_token_file, inbound_token_env")
        if self.type == "servicenow" and (self.user is None or not secrets[0].startswith("password")):
            raise ValueError("servicenow needs user and password_file or password_env (basic auth)")
        if self.type == "zendesk" and (self.user is None or not secrets[0].startswith("token")):
            raise ValueError("zendesk needs user (the agent's e-mail) and token_file or token_env (API token)")
        if self.type == "jira":
            if self.project is None:
                raise ValueError("jira needs project (the project key, e.g. OPS)")
            if self.flavour == "cloud" and self.user is None:
                raise ValueError("jira cloud needs user (the account e-mail) with its API token")
        elif self.project is not None or self.api_version is not None or self.flavour is not None:
            raise ValueError("project, api_version and flavour are for jira only")
        return self

    @property
    def secret(self) -> Secret:
        """The credential: ServiceNow's password, Jira's API token or PAT, Zendesk's API token."""
        return Secret(file=self.password_file or self.token_file, env=self.password_env or self.token_env)

    @property
    def inbound_secret(self) -> Secret | None:
        if self.inbound_token_file is None and self.inbound_token_env is None:
            return None
        return Secret(file=self.inbound_token_file, env=self.inbound_token_env)

    @property
    def jira_version(self) -> int:
        """REST v3 (Cloud, ADF bodies) unless Data Center or `api_version: 2` is said."""
        if self.api_version is not None:
            return self.api_version
        return 2 if self.flavour == "datacenter" else 3

    def priority_name(self, priority: str) -> str:
        defaults = JIRA_PRIORITIES if self.type == "jira" else ZENDESK_PRIORITIES
        return self.priorities.get(priority) or defaults.get(priority) or defaults["P3"]  # type: ignore[call-overload]
