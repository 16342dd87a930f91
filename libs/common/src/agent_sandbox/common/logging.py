"""structlog setup used by every service.

JSON lines in production (one event per line, machine-parsable), a readable
coloured renderer when stderr is a terminal. Secrets must never reach a log
line: :func:`redact` masks values of keys that look like credentials, and is
installed as a processor so a careless ``log.info(..., api_key=key)`` cannot leak.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")
_NOT_SECRET = {"key_id", "keyid", "token_hash", "hash_prefix", "idempotency_key"}


def redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for name, value in list(event.items()):
        lname = name.lower()
        if lname in _NOT_SECRET or not isinstance(value, str | bytes):
            continue
        if any(word in lname for word in _SECRET_WORDS):
            event[name] = "***"
    return event


class _StderrLogger(structlog.PrintLogger):
    """Writes each line to the *current* ``sys.stderr``.

    structlog's PrintLogger binds the stream once; when the stream is later
    replaced and closed (daemonising, test capture), every cached logger would
    fail. Looking ``sys.stderr`` up per line costs nothing measurable.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg


def _stderr_logger_factory(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Configure structlog and stdlib logging once per process.

    ``json`` defaults to true unless stderr is a TTY; ``AGENT_SANDBOX_LOG_FORMAT``
    (``json``/``console``) and ``AGENT_SANDBOX_LOG_LEVEL`` override the defaults.
    """
    level_name = (level or os.environ.get("AGENT_SANDBOX_LOG_LEVEL") or "info").upper()
    fmt = os.environ.get("AGENT_SANDBOX_LOG_FORMAT")
    if json is None:
        json = fmt == "json" if fmt else not sys.stderr.isatty()
    numeric = getattr(logging, level_name, logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric < logging.INFO else numeric)
    # aiohttp's access log is noisy and duplicates our own request metrics.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str | None = None, **bindings: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name, **bindings)
