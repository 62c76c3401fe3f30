"""Config section `ingest` (placeholder model until the ingest service lands; extended in place)."""

from plantmrv.config import StrictModel


class IngestConfig(StrictModel):
    pass
