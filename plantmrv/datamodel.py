"""The data model's names (docs/data-model.md) as code: which fields each measurement has.

Gateways (``schema: data_model`` on a source: ``check-config`` checks its names) and ingest
(``ingest.validation.schema``, by default this) check names against the same table.
"""

from __future__ import annotations

#: The measurements and fields gateways publish (``sample_quality`` and ``mrv`` are written by
#: ingest and analytics themselves, not received).
DATA_MODEL: dict[str, list[str]] = {
    "ubcf": [
        "flow_m3_per_h", "volume_m3", "raw_turbidity_ntu", "treated_turbidity_ntu", "nh4_in_mg_per_l",
        "nh4_out_mg_per_l", "water_temp_c", "pump_power_kw", "blower_power_kw", "pump_energy_kwh",
        "blower_energy_kwh", "backwash", "chlorine_kg_per_h", "coagulant_kg_per_h",
    ],
    "pump": ["flow_m3_per_h", "volume_m3", "head_m", "shaft_power_kw", "power_kw", "efficiency", "energy_kwh", "running", "run_time_h"],
    "vsd": ["speed_pct", "frequency_hz", "flow_m3_per_h", "power_kw", "energy_kwh", "throttle_power_kw", "running", "run_time_h"],
    "wte": [
        "waste_feed_t_per_h", "waste_fed_t", "lhv_mj_per_kg", "steam_t_per_h", "gross_power_kw", "aux_power_kw",
        "net_export_energy_kwh", "incinerating", "aux_fuel_kg_per_h", "aux_fuel_kg", "import_energy_kwh",
    ],
    "pv": ["irradiance_w_per_m2", "module_temp_c", "dc_power_kw", "ac_power_kw", "export_energy_kwh"],
    "gateway": ["buffer_depth", "buffer_bytes", "samples_read", "samples_sent", "samples_dropped", "online", "buffer_max_bytes",
                "nodes_without_history"],
    "coverage": ["tags_total", "tags_bad"],
}

#: Fields that hold a 0/1 state (docs/data-model.md: "(0/1)") and fields that count things: what
#: a typed consumer (the Sparkplug edge-node output: Boolean, Int64) makes of them. Every other
#: field is a real quantity.
STATE_FIELDS: frozenset[tuple[str, str]] = frozenset({
    ("pump", "running"), ("vsd", "running"), ("ubcf", "backwash"), ("wte", "incinerating"), ("gateway", "online"),
})
COUNT_FIELDS: frozenset[tuple[str, str]] = frozenset(
    [("gateway", f) for f in ("buffer_depth", "buffer_bytes", "samples_read", "samples_sent", "samples_dropped", "buffer_max_bytes",
                              "nodes_without_history")]
    + [("coverage", "tags_total"), ("coverage", "tags_bad")]
)


def name_problem(measurement: str, field: str, model: dict[str, list[str]] = DATA_MODEL) -> tuple[str, str] | None:
    """``("measurement" | "field", sentence)`` when the pair is not in ``model``; None when it is."""
    fields = model.get(measurement)
    if fields is None:
        return "measurement", f"{measurement!r} is not a measurement of docs/data-model.md ({', '.join(model)})"
    if field not in fields:
        return "field", f"{field!r} is not a field of {measurement!r} in docs/data-model.md ({', '.join(fields)})"
    return None
