"""Typed settings loading: command-line flags over environment over config file over defaults.

Every service declares its settings as a subclass of :class:`ServiceSettings`
(a pydantic-settings model, so values are validated and typed at start-up, not
at first use). :func:`load_settings` merges, highest priority first:

1. flags explicitly given on the command line (``None`` means "not given"),
2. environment variables ``AGENT_SANDBOX_<FIELD>`` (the prefix is per class),
3. a YAML or JSON config file,
4. the field defaults.

Invalid values raise :class:`SettingsError` with one readable line per problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class SettingsError(ValueError):
    """Settings could not be loaded; the message lists every problem."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_SANDBOX_", extra="forbid", populate_by_name=True)

    _config_file_data: ClassVar[dict[str, Any]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_source = InitSettingsSource(settings_cls, init_kwargs=dict(cls._config_file_data))
        return (init_settings, env_settings, file_source)


S = TypeVar("S", bound=ServiceSettings)


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) if p.stat().st_size else {}
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {p} does not exist") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {p} is not valid YAML/JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {p} must hold a mapping at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_settings(
    cls: type[S],
    flags: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
) -> S:
    """Build ``cls`` from flags, environment, an optional config file and defaults."""
    file_data = read_config_file(config_file) if config_file else {}
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    # A per-call subclass carries the file data, so concurrent loads never share state.
    bound = type(cls.__name__, (cls,), {"_config_file_data": file_data})
    try:
        return bound(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid {cls.__name__}: {problems}") from exc
