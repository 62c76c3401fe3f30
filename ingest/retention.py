"""The retention policy ingest writes to: its duration is the oldest a sample may be (older ones
InfluxDB would refuse, or drop at once)."""

from __future__ import annotations

from plantmrv.influx import InfluxClient, quote_ident
from plantmrv.ingest.validate import parse_go_duration_s


def retention_max_age_s(client: InfluxClient) -> float | None:
    """The duration of the retention policy writes go to (None for INF or when unknown)."""
    res = client.query(f"SHOW RETENTION POLICIES ON {quote_ident(client.database)}")
    for r in res:
        names = r.columns.get("name")
        if names is None:
            continue
        for i, name in enumerate(names):
            chosen = name == client.retention_policy if client.retention_policy else bool(r.columns["default"][i])
            if chosen:
                return parse_go_duration_s(str(r.columns["duration"][i]))
    return None
