"""Gateway settings: a TOML file, then environment variables, then explicit overrides."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.exports.files import ExportFileSettings
from gateway.graphql.limits import LimitSettings
from gateway.http.auth import AuthSettings
from gateway.http.ratelimit import RateLimitSettings
from gateway.model.errors import DescriptorError

__all__ = ["LOCALHOST_ORIGINS", "HttpSettings", "Settings"]

# The origins of pages served from this machine: http(s) on localhost, 127.0.0.1 or [::1].
LOCALHOST_ORIGINS = re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?")

_ENV_PREFIX = "GATEWAY_"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """GraphQL-over-HTTP behaviour for browsers, frontend apps and CDNs."""

    cors_origins: tuple[str, ...] = ()
    # Any http(s) origin on localhost, 127.0.0.1 or [::1], on any port: front-end dev servers.
    cors_localhost: bool = False
    apq: bool = True
    persisted_only: bool = False
    persisted_documents: str | None = None
    max_age: int | None = None
    # Learnt (APQ) documents: kept this long after they were last sent in full, and only
    # up to this size (larger ones are kept as their tokens, or not at all).
    apq_ttl: int = 6 * 3600
    apq_max_document_bytes: int = 16 * 1024

    @classmethod
    def from_config(cls, values: Mapping[str, Any], base: Path) -> HttpSettings:
        """Read the ``[http]`` table."""
        documents = values.get("persisted_documents")
        return cls(
            cors_origins=tuple(str(o) for o in values.get("cors_origins", ())),
            cors_localhost=bool(values.get("cors_localhost", False)),
            apq=bool(values.get("apq", True)),
            persisted_only=bool(values.get("persisted_only", False)),
            persisted_documents=str((base / documents).resolve()) if documents else None,
            max_age=int(values["max_age"]) if "max_age" in values else None,
            apq_ttl=int(values.get("apq_ttl", 6 * 3600)),
            apq_max_document_bytes=int(values.get("apq_max_document_bytes", 16 * 1024)),
        )

    @property
    def cors(self) -> bool:
        """Whether any cross-origin page may call the gateway."""
        return bool(self.cors_origins) or self.cors_localhost

    def allows_origin(self, origin: str) -> bool:
        """Whether a page on ``origin`` (an ``Origin`` header) may call the gateway."""
        if origin in self.cors_origins or "*" in self.cors_origins:
            return True
        return self.cors_localhost and LOCALHOST_ORIGINS.fullmatch(origin) is not None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``create_app`` needs. Built once; no I/O happens at import time.

    ``sources`` overrides ``Source.json`` options per register, e.g.
    ``{"FT": {"url": "http://127.0.0.1:8123/api/"}}``.
    """

    registers_dir: Path = Path("registers")
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    default_first: int = 100
    max_first: int = 1000
    graphiql: bool = True
    introspection: bool = True
    per_level_schema: bool = False
    include: tuple[str, ...] | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    rate_limit: RateLimitSettings | None = field(default_factory=RateLimitSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    cache_url: str | None = None
    response_cache: bool = True
    response_cache_max_ttl: float = 30.0
    fast_path: bool = True
    max_subscriptions_per_connection: int = 20
    # Addresses or networks of reverse proxies whose X-Forwarded-For / Forwarded headers
    # name the client; none by default (the headers are ignored).
    trusted_proxies: tuple[str, ...] = ()
    # Request headers: total bytes of names and values, and how many (else 431).
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    # In-process cache memory per tier (bytes; estimated per entry) and expiry sweeps.
    upstream_cache_max_bytes: int = 128 * 1024 * 1024
    response_cache_max_bytes: int = 64 * 1024 * 1024
    apq_cache_max_bytes: int = 8 * 1024 * 1024
    cache_sweep_interval: float = 10.0
    # Finished export files (Parquet; CSV/NDJSON asked for as files): folder, bytes, age.
    exports: ExportFileSettings = field(default_factory=ExportFileSettings)
    # The history store (gateway/history/store.py): on by default, in a temporary file of
    # this process unless ``history_path`` names one kept across restarts.
    history: bool = True
    history_path: Path | None = None
    history_retention_days: float | None = None
    # A PostgreSQL URL: the history shared by several processes (instead of history_path).
    history_url: str | None = None
    # Registers recorded without gaps: their changes polled on the change feed's schedule
    # (gateway/history/recorder.py), whether or not anyone subscribes.
    history_record: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``path`` (TOML) if given, then ``GATEWAY_*`` environment variables.

        Environment: ``GATEWAY_REGISTERS``, ``GATEWAY_HOST``, ``GATEWAY_PORT``,
        ``GATEWAY_MAX_FIRST``, ``GATEWAY_DEFAULT_FIRST``, ``GATEWAY_ANONYMOUS_LEVEL``,
        ``GATEWAY_REDIS_URL`` (cache and rate limits), ``GATEWAY_CACHE_URL``,
        ``GATEWAY_TRUSTED_PROXIES`` (comma-separated), ``GATEWAY_MAX_HEADER_BYTES``,
        ``GATEWAY_MAX_HEADERS``, ``GATEWAY_AUTH_MAX_FAILURES``, ``GATEWAY_AUTH_FAILURE_WINDOW``,
        ``GATEWAY_CACHE_{UPSTREAM,RESPONSE,APQ}_MAX_BYTES``,
        ``GATEWAY_EXPORTS_{FOLDER,MAX_BYTES,MAX_AGE}`` and per register
        ``GATEWAY_SOURCE__<REG>__<option>`` (e.g. ``GATEWAY_SOURCE__FT__url``).
        """
        settings = cls()
        if path is not None:
            settings = settings.merged(_read_toml(path), base=path.parent)
        return settings.merged(_from_env(os.environ if env is None else env), base=Path.cwd())

    def merged(self, values: Mapping[str, Any], base: Path) -> Settings:
        """A copy with ``values`` (the TOML layout) applied."""
        changes: dict[str, Any] = {}
        if "registers" in values:
            changes["registers_dir"] = (base / str(values["registers"])).resolve()
        server = values.get("server", {})
        for key in (
            "host",
            "port",
            "graphiql",
            "introspection",
            "per_level_schema",
            "max_subscriptions_per_connection",
            "max_header_bytes",
            "max_headers",
        ):
            if key in server:
                changes[key] = server[key]
        if "trusted_proxies" in server:
            proxies = server["trusted_proxies"]
            if isinstance(proxies, str):
                proxies = proxies.split(",")
            changes["trusted_proxies"] = _proxies(proxies)
        limits = dict(values.get("limits", {}))
        for key in ("default_first", "max_first"):
            if key in limits:
                changes[key] = int(limits[key])
        limit_changes: dict[str, Any] = {
            k: int(limits[k])
            for k in (
                "max_document_bytes",
                "max_tokens",
                "max_depth",
                "max_aliases",
                "max_fields",
                "max_variable_values",
            )
            if k in limits
        }
        for per_level in ("cost_budget", "upstream_requests"):
            if per_level in limits:
                limit_changes[per_level] = {int(k): int(v) for k, v in limits[per_level].items()}
        if limit_changes or "default_first" in limits:
            limit_changes["default_first"] = int(limits.get("default_first", self.default_first))
            changes["limits"] = replace(self.limits, **limit_changes)
        if "auth" in values:
            merged_auth = {
                "anonymous_level": self.auth.anonymous_level,
                "max_failures": self.auth.max_failures,
                "failure_window": self.auth.failure_window,
                **values["auth"],
            }
            auth = AuthSettings.from_config(merged_auth, base)
            if "keys" not in values["auth"]:
                auth = replace(auth, keys=self.auth.keys)
            if "jwt" not in values["auth"]:
                # e.g. GATEWAY_AUTH_MAX_FAILURES alone keeps the file's JWT settings.
                auth = replace(
                    auth,
                    jwt_algorithms=self.auth.jwt_algorithms,
                    jwt_keys=self.auth.jwt_keys,
                    jwt_issuer=self.auth.jwt_issuer,
                    jwt_audience=self.auth.jwt_audience,
                    level_claim=self.auth.level_claim,
                )
            changes["auth"] = auth
        rate = values.get("rate_limit")
        if rate is not None:
            if rate.get("enabled", True) is False:
                changes["rate_limit"] = None
            else:
                current = self.rate_limit or RateLimitSettings()
                changes["rate_limit"] = RateLimitSettings(
                    per_key=int(rate.get("per_key", current.per_key)),
                    per_ip=int(rate.get("per_ip", current.per_ip)),
                    redis_url=rate.get("redis_url", current.redis_url),
                    websocket_flood=int(rate.get("websocket_flood", current.websocket_flood)),
                    burst=int(rate["burst"]) if "burst" in rate else current.burst,
                )
        cache = values.get("cache", {})
        if "url" in cache:
            changes["cache_url"] = str(cache["url"]) or None
        if "response_cache" in cache:
            changes["response_cache"] = bool(cache["response_cache"])
        if "fast_path" in values.get("server", {}):
            changes["fast_path"] = bool(values["server"]["fast_path"])
        if "response_max_ttl" in cache:
            changes["response_cache_max_ttl"] = float(cache["response_max_ttl"])
        for key in ("upstream", "response", "apq"):
            if f"{key}_max_bytes" in cache:
                changes[f"{key}_cache_max_bytes"] = int(cache[f"{key}_max_bytes"])
        if "sweep_interval" in cache:
            changes["cache_sweep_interval"] = float(cache["sweep_interval"])
        if "http" in values:
            changes["http"] = HttpSettings.from_config(values["http"], base)
        history = values.get("history", {})
        if "enabled" in history:
            changes["history"] = bool(history["enabled"])
        if "path" in history:
            changes["history_path"] = (
                (base / str(history["path"])).resolve() if history["path"] else None
            )
        if "retention_days" in history:
            days = history["retention_days"]
            changes["history_retention_days"] = None if days in (None, 0, "") else float(days)
        if "url" in history:
            changes["history_url"] = str(history["url"]) if history["url"] else None
        if "record" in history:
            record = history["record"]
            if isinstance(record, str):
                record = [r.strip() for r in record.split(",") if r.strip()]
            if not isinstance(record, list) or not all(isinstance(r, str) for r in record):
                raise DescriptorError("history.record is a list of register names")
            changes["history_record"] = tuple(record)
        if "exports" in values:
            files_now = self.exports
            merged_exports = {
                "max_bytes": files_now.max_bytes,
                "max_age": files_now.max_age,
                "scheduled": files_now.scheduled,
                **values["exports"],
            }
            try:
                exports = ExportFileSettings.from_config(merged_exports, base)
            except (TypeError, ValueError) as exc:
                raise DescriptorError(f"exports: {exc}") from exc
            if "folder" not in values["exports"]:
                exports = replace(exports, folder=files_now.folder)
            changes["exports"] = exports
        sources = {k: dict(v) for k, v in self.sources.items()}
        for register, options in values.get("sources", {}).items():
            sources.setdefault(register, {}).update(options)
        changes["sources"] = sources
        try:
            return replace(self, **changes)
        except (TypeError, ValueError) as exc:
            raise DescriptorError(f"bad configuration: {exc}") from exc


def _proxies(proxies: Any) -> tuple[str, ...]:
    """Trusted proxies as given (addresses or networks), checked."""
    import ipaddress

    out = tuple(str(p).strip() for p in proxies if str(p).strip())
    for proxy in out:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise DescriptorError(f"server.trusted_proxies: {exc}") from exc
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DescriptorError(f"cannot read configuration {path}: {exc}") from exc


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {"sources": {}}
    simple = {
        "REGISTERS": ("registers", None, str),
        "HOST": ("server", "host", str),
        "PORT": ("server", "port", int),
        "MAX_FIRST": ("limits", "max_first", int),
        "DEFAULT_FIRST": ("limits", "default_first", int),
        "ANONYMOUS_LEVEL": ("auth", "anonymous_level", int),
        "REDIS_URL": ("rate_limit", "redis_url", str),
        "CACHE_URL": ("cache", "url", str),
        "TRUSTED_PROXIES": ("server", "trusted_proxies", str),
        "MAX_HEADER_BYTES": ("server", "max_header_bytes", int),
        "MAX_HEADERS": ("server", "max_headers", int),
        "AUTH_MAX_FAILURES": ("auth", "max_failures", int),
        "AUTH_FAILURE_WINDOW": ("auth", "failure_window", float),
        "CACHE_UPSTREAM_MAX_BYTES": ("cache", "upstream_max_bytes", int),
        "CACHE_RESPONSE_MAX_BYTES": ("cache", "response_max_bytes", int),
        "CACHE_APQ_MAX_BYTES": ("cache", "apq_max_bytes", int),
        "EXPORTS_FOLDER": ("exports", "folder", str),
        "HISTORY_PATH": ("history", "path", str),
        "HISTORY_RECORD": ("history", "record", str),
        "HISTORY_URL": ("history", "url", str),
        "EXPORTS_MAX_BYTES": ("exports", "max_bytes", int),
        "EXPORTS_MAX_AGE": ("exports", "max_age", float),
        "EXPORTS_SCHEDULED": ("exports", "scheduled", str),
    }
    for name, raw in env.items():
        if not name.startswith(_ENV_PREFIX):
            continue
        key = name[len(_ENV_PREFIX) :]
        if key in simple:
            section, option, convert = simple[key]
            try:
                value = convert(raw)
            except ValueError as exc:
                raise DescriptorError(f"{name}: {exc}") from exc
            if option is None:
                values[section] = value
            else:
                values.setdefault(section, {})[option] = value
        if key == "REDIS_URL":
            # One Redis for both: the shared cache and the shared rate-limit counters.
            values.setdefault("cache", {})["url"] = raw
        if key.startswith("SOURCE__"):
            _, register, option = [*key.split("__", 2), "", ""][:3]
            if register and option:
                values["sources"].setdefault(register, {})[option] = raw
    return values
