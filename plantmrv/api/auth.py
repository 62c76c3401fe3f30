"""Bearer-token authentication and per-project authorisation.

``Authorization: Bearer <token>`` only (never a query parameter, so tokens stay out of access
logs and browser histories). Config tokens are compared by hash with
:func:`hmac.compare_digest`; store tokens are looked up by hash on a small thread pool of their
own (never the one that waits on InfluxDB). Expired and revoked tokens get the same 401 as
unknown ones. A verifier asking for a project outside its list gets the same 403 whether the
project exists or not, so a token cannot probe which projects exist.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime
from typing import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plantmrv.api.config import ApiConfig
from plantmrv.api.tokens import Principal, TokenStore, TokenStoreError, hash_token, utc_now

log = logging.getLogger("plantmrv.api")
UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="missing or invalid bearer token",
    headers={"WWW-Authenticate": 'Bearer realm="plantmrv"'},
)
FORBIDDEN_PROJECT = HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="this token may not read that project")
STORE_UNAVAILABLE = HTTPException(status_code=503, detail="token store unavailable")


class Authenticator:
    def __init__(self, cfg: ApiConfig, clock: Callable[[], datetime] = utc_now):
        self.clock = clock
        self._config_tokens = [
            (t.sha256, t.expires, Principal(name=t.name, role=t.role, projects=frozenset(t.projects), source="config")) for t in cfg.tokens
        ]
        self.store = TokenStore(cfg.token_store, clock=clock) if cfg.token_store else None

    @staticmethod
    def bearer(authorization: str | None) -> str:
        if not authorization:
            raise UNAUTHORIZED
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 256:
            raise UNAUTHORIZED
        return token

    def from_config(self, token: str) -> Principal | None:
        digest = hash_token(token)
        found = None
        for sha, expires, who in self._config_tokens:
            if hmac.compare_digest(sha, digest) and (expires is None or self.clock() < expires):
                found = who
        return found

    def from_store(self, token: str) -> Principal | None:
        if self.store is None:
            return None
        try:
            return self.store.lookup(token)
        except TokenStoreError as exc:
            log.error("event=token_store_error error=%s", str(exc)[:300].replace("\n", " "))
            raise STORE_UNAVAILABLE from None

    def authenticate(self, authorization: str | None) -> Principal:
        """Blocking form (tests, tools): config tokens, then the store."""
        token = self.bearer(authorization)
        found = self.from_config(token) or self.from_store(token)
        if found is None:
            raise UNAUTHORIZED
        return found


#: Declares the scheme in the OpenAPI document (the header is parsed below, with our own 401).
BEARER = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>` (`plantmrv api token create`).")


async def principal(request: Request, _declared: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> Principal:
    """FastAPI dependency: the caller, or 401. Records who called for the request log."""
    auth: Authenticator = request.app.state.authenticator
    token = auth.bearer(request.headers.get("authorization"))
    who = auth.from_config(token)
    if who is None and auth.store is not None:
        who = await request.app.state.limits.run_aux(auth.from_store, token)
    if who is None:
        raise UNAUTHORIZED
    request.state.principal = who
    return who


def require_admin(who: Principal) -> None:
    if who.role != "admin":
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="admin role required")


def require_operator(who: Principal) -> None:
    if who.role not in ("operator", "admin"):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="operator or admin role required")
