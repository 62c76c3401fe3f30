"""Bearer-token authentication and per-project authorisation.

``Authorization: Bearer <token>`` only (never a query parameter, so tokens stay out of access
logs and browser histories). Config tokens are compared by hash with
:func:`hmac.compare_digest`; store tokens are looked up by hash. A verifier asking for a
project outside its list gets the same 403 whether the project exists or not, so a token
cannot probe which projects exist.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from plantmrv.api.config import ApiConfig
from plantmrv.api.tokens import Principal, TokenStore, TokenStoreError, hash_token

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="missing or invalid bearer token",
    headers={"WWW-Authenticate": 'Bearer realm="plantmrv"'},
)
FORBIDDEN_PROJECT = HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="this token may not read that project")


class Authenticator:
    def __init__(self, cfg: ApiConfig):
        self._config_tokens = [
            (t.sha256, Principal(name=t.name, role=t.role, projects=frozenset(t.projects), source="config")) for t in cfg.tokens
        ]
        self.store = TokenStore(cfg.token_store) if cfg.token_store else None

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise UNAUTHORIZED
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 256:
            raise UNAUTHORIZED
        digest = hash_token(token)
        found = None
        for sha, principal in self._config_tokens:
            if hmac.compare_digest(sha, digest):
                found = principal
        if found is None and self.store is not None:
            try:
                found = self.store.lookup(token)
            except TokenStoreError:
                raise HTTPException(status_code=503, detail="token store unavailable") from None
        if found is None:
            raise UNAUTHORIZED
        return found


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401. Records who called for the request log."""
    auth: Authenticator = request.app.state.authenticator
    who = auth.authenticate(request.headers.get("authorization"))
    request.state.principal = who
    return who


def require_admin(who: Principal) -> None:
    if who.role != "admin":
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="admin role required")
