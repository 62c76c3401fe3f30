"""What ``plantmrv gateway status`` shows, read from a running agent's Prometheus ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StatusView:
    components: dict[str, bool] = field(default_factory=dict)  # "source:plc" -> up
    totals: dict[str, float] = field(default_factory=dict)  # samples_read, samples_sent, buffer_depth_samples, ...
    dropped: dict[str, float] = field(default_factory=dict)  # reason -> samples
    bad_nodes: list[dict[str, str]] = field(default_factory=list)  # source, node, series, status, phase
    no_history: list[dict[str, str]] = field(default_factory=list)  # source, node, series: an outage is a permanent gap there


def parse(text: str) -> StatusView:
    from prometheus_client.parser import text_string_to_metric_families

    view = StatusView()
    p = "plantmrv_gateway_"
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name[len(p):] if s.name.startswith(p) else None
            if name is None:
                continue
            if name == "connected":
                view.components[s.labels["component"]] = s.value == 1
            elif name == "node_bad" and s.value == 1:
                view.bad_nodes.append({k: s.labels[k] for k in ("source", "node", "series", "status", "phase")})
            elif name == "node_without_history" and s.value == 1:
                view.no_history.append({k: s.labels[k] for k in ("source", "node", "series")})
            elif name == "samples_dropped_total":
                view.dropped[s.labels["reason"]] = s.value
            elif name in ("samples_read_total", "samples_sent_total", "samples_buffered_total", "buffer_depth_samples", "buffer_bytes"):
                view.totals[name.removesuffix("_total")] = view.totals.get(name.removesuffix("_total"), 0.0) + s.value
    view.bad_nodes.sort(key=lambda n: (n["source"], n["status"], n["node"]))
    view.no_history.sort(key=lambda n: (n["source"], n["node"]))
    return view


def fetch(url: str, timeout_s: float = 5.0) -> StatusView:
    """OSError when the agent cannot be reached."""
    import httpx

    try:
        r = httpx.get(url, timeout=timeout_s)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise OSError(str(exc)) from None
    return parse(r.text)


def render(view: StatusView, gateway: str, url: str) -> str:
    t = view.totals
    lines = [f"gateway {gateway} ({url})"]
    lines.append("components: " + (", ".join(f"{k} {'up' if up else 'DOWN'}" for k, up in sorted(view.components.items())) or "none reported yet"))
    lines.append(f"samples: read {t.get('samples_read', 0):.0f}, buffered {t.get('samples_buffered', 0):.0f}, "
                 f"sent {t.get('samples_sent', 0):.0f}; buffer {t.get('buffer_depth_samples', 0):.0f} samples, {t.get('buffer_bytes', 0):.0f} bytes")
    if view.dropped:
        lines.append("dropped: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(view.dropped.items())))
    if view.bad_nodes:
        lines.append(f"tags that cannot be read or subscribed: {len(view.bad_nodes)}")
        rows = [("source", "status", "phase", "node", "series")] + [(n["source"], n["status"], n["phase"], n["node"], n["series"]) for n in view.bad_nodes]
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines += ["  " + "  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
    else:
        lines.append("tags that cannot be read or subscribed: none")
    if view.no_history:
        shown = ", ".join(n["node"] for n in view.no_history[:10]) + (f", and {len(view.no_history) - 10} more" if len(view.no_history) > 10 else "")
        lines.append(f"tags whose server keeps no history (an outage beyond its queues is a permanent gap): {len(view.no_history)}: {shown}")
    return "\n".join(lines) + "\n"
