"""Bearer-token auth for the API: tokens and scopes come from `api.tokens` in the config.

Scopes: `feed:read` (records, stream, devices, offices, metrics, days, facts), `punches:write` (HTTP
ingest), `facts:write` (officer facts pushed by the core: approvals, leave, BDR),
`admin` (quarantine, replay, forwarding, ADMS admin, the dashboard's overview — and everything
else: admin implies every scope). A request without a valid token gets 401 with
`WWW-Authenticate: Bearer`; a valid token without the scope gets 403. Tokens are compared in
constant time against every configured token, so timing reveals neither a match nor its position.

No tokens configured: the API is open to loopback clients only (127.0.0.0/8, ::1) — a hub on an
admin's own machine or behind a local reverse proxy — and the hub logs a warning at start. Any other
client gets 401 until tokens are configured. The health endpoints are always open.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..config import HubConfig

log = logging.getLogger(__name__)

ADMIN = "admin"
FEED_READ = "feed:read"
PUNCHES_WRITE = "punches:write"
FACTS_WRITE = "facts:write"

_bearer = HTTPBearer(auto_error=False, description="An API token from `api.tokens`.")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenAuth:
    """Checks bearer tokens; `require(scope)` builds a FastAPI dependency."""

    def __init__(self, cfg: HubConfig):
        self.tokens = [
            (t.token.get_secret_value().encode(), Principal(t.name, frozenset(t.scopes)))
            for t in cfg.api.tokens
        ]
        if not self.tokens:
            log.warning(
                "no API tokens configured: the API answers loopback clients only "
                "(configure api.tokens to serve other hosts)"
            )

    def identify(self, token: str) -> Principal | None:
        given = token.encode()
        found: Principal | None = None
        for secret, principal in self.tokens:  # compare with every token: no early exit
            if hmac.compare_digest(given, secret) and found is None:
                found = principal
        return found

    def require(
        self, scope: str
    ) -> Callable[[Request, HTTPAuthorizationCredentials | None], Coroutine[Any, Any, Principal]]:
        async def dependency(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Principal:
            return self.check(request, credentials, scope)

        dependency.__name__ = f"require_{scope.replace(':', '_')}"
        return dependency

    def check(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None, scope: str
    ) -> Principal:
        if not self.tokens:
            client = request.client.host if request.client else None
            if is_loopback(client):
                return Principal("loopback", frozenset({ADMIN}))
            raise _unauthorized("no API tokens are configured; only loopback clients are served")
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("a bearer token is required")
        principal = self.identify(credentials.credentials)
        if principal is None:
            raise _unauthorized("unknown token")
        if scope not in principal.scopes and ADMIN not in principal.scopes:
            raise HTTPException(403, f"token {principal.name!r} lacks the {scope!r} scope")
        request.state.principal = principal
        return principal


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
