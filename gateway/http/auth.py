"""Authentication: API keys and bearer JWTs → a caller with a security level.

No credentials → the configured anonymous level. Bad credentials → 401 ``UNAUTHENTICATED``;
a caller is never silently downgraded. Keys are stored hashed (SHA-256) and never logged.

Failed attempts are counted per client address: after ``max_failures`` within
``failure_window`` seconds, further attempts with credentials from that address are
answered 429 ``RATE_LIMITED`` (a WebSocket is closed with 4429) until the window ends.
Other addresses, and requests without credentials, are not affected.

Browsers cannot set headers on a WebSocket, so its credentials may also come in the
``connection_init`` payload, in the forms the common clients send (:func:`init_credentials`):
``{"apiKey": …}``, ``{"Authorization": "Bearer …"}``, ``{"X-API-Key": …}`` or any of them
under ``"headers"``, the names in any case. They get the same checks; a refusal closes the
socket with 4401 (4429 after many failures) and the reason as its close reason. The API key
parameter of the query string is accepted in any case (``apiKey``, ``apikey``, ``APIKEY``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

import jwt
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.model.callers import Caller
from gateway.model.errors import DescriptorError

__all__ = [
    "INIT_AUTH",
    "ApiKey",
    "AuthMiddleware",
    "AuthSettings",
    "Caller",
    "ConnectionAuth",
    "ConnectionRefused",
    "hash_key",
    "init_credentials",
    "send_error",
]

log = logging.getLogger("gateway.http.auth")

DEMO_KEYS = ("demo-level-1", "demo-level-2", "demo-level-3")

# Failed authentications per client address within a window before further attempts
# are refused (429) until the window ends.
MAX_FAILURES = 30
FAILURE_WINDOW = 60.0


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A configured key: its SHA-256, its level and a name for logs."""

    name: str
    level: int
    sha256: str


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How callers authenticate."""

    anonymous_level: int = 0
    keys: tuple[ApiKey, ...] = ()
    min_key_length: int = 24
    jwt_algorithms: tuple[str, ...] = ()
    jwt_keys: tuple[Any, ...] = field(default=(), repr=False)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    level_claim: str = "level"
    # Failed authentications per client address and window before 429s (0: never slowed).
    max_failures: int = MAX_FAILURES
    failure_window: float = FAILURE_WINDOW

    @classmethod
    def from_config(cls, values: Mapping[str, Any], base: Path) -> AuthSettings:
        """Read the ``[auth]`` table of the configuration."""
        keys: list[ApiKey] = []
        minimum = int(values.get("min_key_length", 24))
        for entry in values.get("keys", ()):
            level = _level(entry.get("level"), f"auth.keys {entry.get('name')!r}")
            if "sha256" in entry:
                digest = str(entry["sha256"]).lower()
            elif "key" in entry:
                if len(str(entry["key"])) < minimum:
                    raise DescriptorError(
                        f"auth.keys {entry.get('name')!r}: a key needs {minimum} characters or more"
                    )
                digest = hash_key(str(entry["key"]))
            else:
                raise DescriptorError("auth.keys entries need sha256 (or key)")
            keys.append(ApiKey(str(entry.get("name", "key")), level, digest))
        jwt_config = values.get("jwt", {})
        algorithms = tuple(jwt_config.get("algorithms", ()))
        unknown = set(algorithms) - {"HS256", "RS256", "ES256"}
        if unknown:
            raise DescriptorError(f"auth.jwt.algorithms: unsupported {sorted(unknown)}")
        return cls(
            anonymous_level=_level(values.get("anonymous_level", 0), "auth.anonymous_level"),
            keys=tuple(keys),
            min_key_length=minimum,
            jwt_algorithms=algorithms,
            jwt_keys=tuple(_jwt_keys(jwt_config, base)),
            jwt_issuer=jwt_config.get("issuer"),
            jwt_audience=jwt_config.get("audience"),
            level_claim=str(jwt_config.get("level_claim", "level")),
            max_failures=int(values.get("max_failures", MAX_FAILURES)),
            failure_window=float(values.get("failure_window", FAILURE_WINDOW)),
        )

    @classmethod
    def demo(cls) -> AuthSettings:
        """The demo's keys: ``demo-level-N`` has level N (too short for a served gateway)."""
        keys = tuple(ApiKey(k, int(k[-1]), hash_key(k)) for k in DEMO_KEYS)
        return cls(keys=keys, min_key_length=1)


def _level(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3:
        raise DescriptorError(f"{where}: a level is an integer from 0 to 3")
    return value


def _jwt_keys(config: Mapping[str, Any], base: Path) -> list[Any]:
    keys: list[Any] = []
    if "secret" in config:
        keys.append(str(config["secret"]))
    for name in ("public_key_file",):
        if name in config:
            keys.append((base / str(config[name])).read_text(encoding="utf-8"))
    if "jwks_file" in config:
        document = json.loads((base / str(config["jwks_file"])).read_text(encoding="utf-8"))
        keys.extend(jwt.PyJWKSet.from_dict(document).keys)
    return keys


class AuthenticationError(Exception):
    """Credentials were given and are not good."""


class Authenticator:
    """Turns a request's credentials into a :class:`Caller`."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._keys = {k.sha256: k for k in settings.keys}

    def caller(self, headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> Caller:
        key = headers.get("x-api-key") or next((v for k, v in query if _is_key_param(k)), None)
        authorization = headers.get("authorization", "")
        if key is not None and authorization:
            raise AuthenticationError("give either an API key or a bearer token, not both")
        if key is not None:
            return self._by_key(key)
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
            return self._by_token(token.strip())
        return Caller("anonymous", self.settings.anonymous_level, "anonymous")

    def _by_key(self, key: str) -> Caller:
        if len(key) < self.settings.min_key_length:
            raise AuthenticationError("unknown API key")
        digest = hash_key(key)
        for stored, entry in self._keys.items():
            if hmac.compare_digest(stored, digest):
                return Caller(entry.name, entry.level, "api-key")
        raise AuthenticationError("unknown API key")

    def _by_token(self, token: str) -> Caller:
        if not self.settings.jwt_algorithms or not self.settings.jwt_keys:
            raise AuthenticationError("bearer tokens are not accepted here")
        options = {"require": ["exp"], "verify_aud": self.settings.jwt_audience is not None}
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid bearer token: {type(exc).__name__}") from None
        if algorithm not in self.settings.jwt_algorithms:
            raise AuthenticationError(f"bearer tokens signed with {algorithm!r} are not accepted")
        last: Exception | None = None
        for key in self.settings.jwt_keys:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=[algorithm],
                    audience=self.settings.jwt_audience,
                    issuer=self.settings.jwt_issuer,
                    options=options,  # type: ignore[arg-type]
                )
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                # A key of another kind (an EC key for an RS256 token, ...) cannot verify it.
                last = exc
                continue
            level = claims.get(self.settings.level_claim)
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 3:
                claim = self.settings.level_claim
                raise AuthenticationError(f"the token's {claim!r} claim is not a level")
            return Caller(str(claims.get("sub", "jwt")), level, "jwt")
        raise AuthenticationError(f"invalid bearer token: {type(last).__name__}")


class FailureLimiter:
    """Failed authentications per client address, in fixed windows (in process, bounded)."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, count)

    def blocked(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        if self.max_failures <= 0:
            return None
        found = self._failures.get(address)
        if found is None:
            return None
        started, count = found
        left = started + self.window - self.clock()
        if left <= 0:
            del self._failures[address]
            return None
        return math.ceil(left) if count >= self.max_failures else None

    def failed(self, address: str) -> None:
        """Count one failure of ``address``."""
        if self.max_failures <= 0:
            return
        now = self.clock()
        started, count = self._failures.get(address, (now, 0))
        if now >= started + self.window:
            started, count = now, 0
        if address not in self._failures and len(self._failures) >= self.max_addresses:
            self._sweep(now)
        self._failures[address] = (started, count + 1)

    def _sweep(self, now: float) -> None:
        self._failures = {a: v for a, v in self._failures.items() if now < v[0] + self.window}
        while len(self._failures) >= self.max_addresses:
            del self._failures[next(iter(self._failures))]  # the oldest first


# Where a WebSocket's scope holds its :class:`ConnectionAuth`.
INIT_AUTH: Final = "gateway.connection_auth"

# The names a connection_init payload gives credentials under (lower case) → their header.
_INIT_NAMES: Final = {
    "apikey": "x-api-key",
    "api_key": "x-api-key",
    "api-key": "x-api-key",
    "x-api-key": "x-api-key",
    "authorization": "authorization",
}

# A WebSocket close reason is at most 123 bytes.
_MAX_REASON: Final = 123


class ConnectionRefused(Exception):
    """A ``connection_init`` whose credentials are refused: close with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode("utf-8")[:_MAX_REASON].decode("utf-8", "ignore")


def init_credentials(payload: Mapping[str, Any]) -> dict[str, str]:
    """The credentials of a ``connection_init`` payload, as the headers they stand for.

    ``apiKey``, ``api_key``, ``X-API-Key`` and ``Authorization`` in any case, at the top
    or under ``headers`` (as Apollo Client, urql and graphql-ws are configured to send
    them). A credential that is not a string, or one given twice with different values,
    is an :class:`AuthenticationError`; ``null`` counts as absent.
    """
    places: list[Mapping[Any, Any]] = [payload]
    for name, value in payload.items():
        if str(name).lower() == "headers" and value is not None:
            if not isinstance(value, Mapping):
                raise AuthenticationError(f"connection_init: {name!r} must be an object")
            places.append(value)
    found: dict[str, str] = {}
    for place in places:
        for name, value in place.items():
            header = _INIT_NAMES.get(str(name).lower())
            if header is None or value is None:
                continue
            if not isinstance(value, str):
                raise AuthenticationError(f"connection_init: {name!r} must be a string")
            if found.get(header, value) != value:
                raise AuthenticationError(f"connection_init: {name!r} is given twice, differently")
            found[header] = value
    return found


@dataclass(frozen=True, slots=True)
class ConnectionAuth:
    """What a WebSocket's ``connection_init`` needs to authenticate its caller."""

    authenticator: Authenticator
    failures: FailureLimiter
    address: str
    caller: Caller  # as the handshake's headers and query string made it

    def caller_for(self, payload: Mapping[str, Any]) -> Caller:
        """The connection's caller after ``payload``; :class:`ConnectionRefused` if refused.

        A payload without credentials leaves the handshake's caller. Credentials in both
        the handshake and the payload must name the same caller.
        """
        try:
            headers = init_credentials(payload)
        except AuthenticationError as exc:
            raise ConnectionRefused(4400, str(exc)) from None
        if not headers:
            return self.caller
        retry = self.failures.blocked(self.address)
        if retry is not None:
            log.info("authentication refused from %s: too many failures", self.address)
            raise ConnectionRefused(
                4429, f"too many failed authentications from this address; retry in {retry} s"
            )
        try:
            caller = self.authenticator.caller(headers, ())
        except AuthenticationError as exc:
            log.info("authentication failed from %s: %s", self.address, exc)
            self.failures.failed(self.address)
            raise ConnectionRefused(4401, f"Unauthorized: {exc}") from None
        if self.caller.method != "anonymous" and caller != self.caller:
            raise ConnectionRefused(
                4401, "Unauthorized: the connection_init credentials differ from the handshake's"
            )
        return caller


class AuthMiddleware:
    """Sets ``scope["caller"]``; answers 401 for bad credentials, 429 after many of them."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator
        settings = authenticator.settings
        self.failures = FailureLimiter(settings.max_failures, settings.failure_window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        caller = await self.authenticate(scope, send)
        if caller is None:
            return
        if scope["type"] == "websocket":
            address = _client(scope)
            scope[INIT_AUTH] = ConnectionAuth(self.authenticator, self.failures, address, caller)
        await self.app(scope, receive, send)

    async def authenticate(self, scope: Scope, send: Send) -> Caller | None:
        """Set and return ``scope["caller"]``; None once the request has been refused."""
        headers, query = _credentials(scope)
        address = _client(scope)
        if _has_credentials(headers, query):
            retry = self.failures.blocked(address)
            if retry is not None:
                log.info("authentication refused from %s: too many failures", address)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4429})
                    return None
                await _too_many_failures(retry, self.failures.max_failures, send)
                return None
        try:
            caller: Caller = self.authenticator.caller(headers, query)
        except AuthenticationError as exc:
            log.info("authentication failed from %s: %s", address, exc)
            self.failures.failed(address)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401})
                return None
            await _unauthenticated(str(exc), send)
            return None
        scope["caller"] = caller
        return caller


_CREDENTIAL_HEADERS: Final = (b"x-api-key", b"authorization")


def _credentials(scope: Scope) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The credential headers of a request (the last of each name) and its query parameters
    (parsed only when one of them may be an API key)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered in _CREDENTIAL_HEADERS:
            headers[lowered.decode("latin-1")] = value.decode("latin-1")
    raw: bytes = scope.get("query_string", b"")
    if not raw or (b"apikey" not in raw.lower() and not _escaped_names(raw)):
        return headers, []
    return headers, parse_qsl(raw.decode("latin-1"))


def _escaped_names(query_string: bytes) -> bool:
    """Whether a parameter name is percent-encoded (it could spell ``apiKey``)."""
    return any(b"%" in part.partition(b"=")[0] for part in query_string.split(b"&"))


def _has_credentials(headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> bool:
    return (
        "x-api-key" in headers
        or "authorization" in headers
        or any(_is_key_param(k) for k, _ in query)
    )


def _is_key_param(name: str) -> bool:
    return name.lower() == "apikey"


async def _too_many_failures(retry: int, limit: int, send: Send) -> None:
    message = f"too many failed authentications from this address; retry in {retry} s"
    extensions = {"code": "RATE_LIMITED", "retryAfter": retry, "limit": limit}
    error = {"message": message, "extensions": extensions}
    await send_error(send, 429, error, [(b"retry-after", str(retry).encode())])


async def send_error(
    send: Send,
    status: int,
    error: Mapping[str, Any],
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer an HTTP request with one GraphQL-shaped error, straight over ASGI."""
    body = json.dumps({"errors": [error]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                *headers,
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


async def _unauthenticated(message: str, send: Send) -> None:
    await send_error(
        send,
        401,
        {"message": message, "extensions": {"code": "UNAUTHENTICATED"}},
        [(b"www-authenticate", b'Bearer realm="dls-gateway"')],
    )
