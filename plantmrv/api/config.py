"""Config section `api` (placeholder model until the API lands; extended in place)."""

from plantmrv.config import StrictModel


class ApiConfig(StrictModel):
    pass
