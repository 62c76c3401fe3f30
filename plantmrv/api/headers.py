"""Response headers every answer carries: nothing cached by proxies or browsers (answers hold
project data and depend on the token), no content sniffing, no referrer, and HSTS when the
API itself serves HTTPS (``api.tls``)."""

from __future__ import annotations

COMMON = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """ASGI middleware adding :data:`COMMON` (and HSTS over HTTPS) where the app set none."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = COMMON + ([HSTS] if scope.get("scheme") == "https" else [])

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *((k, v) for k, v in extra if k not in have)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
