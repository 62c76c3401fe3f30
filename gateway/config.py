"""Config section `gateway` (placeholder model until the gateway service lands; extended in place)."""

from plantmrv.config import StrictModel


class GatewayConfig(StrictModel):
    pass
