"""`ALERTDESK_<NAME>_FILE`: a secret setting read from the file a variable names (Docker/Kubernetes secrets).

Orchestrators hand secrets to a container as files (`/run/secrets/…`), which keeps them out of `docker inspect`,
`/proc/<pid>/environ` and crash dumps of the environment. Both forms at once is refused rather than one picked
silently: whichever won, an operator rotating the other would not see their change take effect.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from normalizers.schema import AlertdeskError


class InvalidSetting(AlertdeskError):
    """A setting that cannot be read: start-up stops with the variable (and file) at fault."""


def file_variable(prefix: str, name: str) -> str:
    return f"{prefix}{name.upper()}_FILE"


def read_secret_file(path: str, variable: str) -> str:
    """The file's content without its trailing newline (`echo token > file` writes one)."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise InvalidSetting(f"cannot read {variable}={path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidSetting(f"cannot read {variable}={path}: not UTF-8 text") from None


class SecretFiles(PydanticBaseSettingsSource):
    """The values of `names` whose `_FILE` variable is set; `skip` (given as CLI flags) are not read at all."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        names: Collection[str],
        *,
        environ: Mapping[str, str],
        skip: Collection[str] = (),
    ) -> None:
        super().__init__(settings_cls)
        self._prefix = str(self.config.get("env_prefix", ""))
        self._names = [name for name in names if name not in skip]
        self._environ = {key.upper(): value for key, value in environ.items()}  # as pydantic-settings: any case

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # every value comes from __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self._names:
            plain, variable = f"{self._prefix}{name.upper()}", file_variable(self._prefix, name)
            if variable not in self._environ:
                continue
            if plain in self._environ:
                raise InvalidSetting(f"{plain} and {variable} are both set: set one of them")
            values[name] = read_secret_file(self._environ[variable], variable)
        return values
