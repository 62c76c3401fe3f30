"""``plantmrv gateway browse URL``: walk an OPC UA address space, print a ready-to-paste source.

Scalar variables with a numeric or boolean data type become ``nodes`` entries grouped by their
parent object (one group per object, ``asset`` = the object's browse name); what the gateway
cannot carry (arrays, structures, strings, ...) is listed as a comment saying why, never
silently left out. Field names follow docs/data-model.md: the browse name in snake_case with the
unit from its ``EngineeringUnits`` property (``Flow`` + ``m³/h`` -> ``flow_m3_per_h``; a unit the
name already ends with is not repeated, ``Energy_kWh`` + ``kW·h`` -> ``energy_kwh``); a unit it
cannot spell is named in a comment. The source says ``schema: data_model``, so ``check-config``
refuses names outside the data model until they are renamed (or the check is turned off). With
``--measurement`` every group gets that measurement; without, each group's measurement is left
for the engineer to fill in, and the pasted config does not load until it is.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from plantmrv.datamodel import DATA_MODEL

_UNIT_SUFFIX = {
    "kw": "kw", "w": "w", "mw": "mw", "kwh": "kwh", "mwh": "mwh", "wh": "wh", "gwh": "gwh", "kvar": "kvar", "kva": "kva",
    "m3/h": "m3_per_h", "m3/s": "m3_per_s", "m3": "m3", "l/s": "l_per_s", "l/min": "l_per_min", "l": "l",
    "m": "m", "mm": "mm", "bar": "bar", "mbar": "mbar", "kpa": "kpa", "pa": "pa", "mpa": "mpa", "%": "pct", "pct": "pct",
    "hz": "hz", "rpm": "rpm", "1/min": "rpm", "°c": "c", "degc": "c", "c": "c", "k": "k", "ntu": "ntu", "mg/l": "mg_per_l",
    "t/h": "t_per_h", "t": "t", "kg": "kg", "kg/h": "kg_per_h", "w/m2": "w_per_m2", "v": "v", "kv": "kv", "a": "a",
    "mj/kg": "mj_per_kg", "s": "s", "h": "h", "min": "min",
}
_DIMENSIONLESS = {"", "1", "-", "—", "n/a", "na", "none", "ratio", "unitless"}
_NUMERIC = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 26, 27, 28, 29}  # Boolean .. Double, Number, Integer, UInteger, Enumeration


def snake(name: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    return s if s and not s[0].isdigit() else f"v_{s}"


def unit_suffix(unit: str | None) -> str | None:
    """The field-name suffix of an engineering unit (``kW·h`` -> ``kwh``, ``m³/h`` -> ``m3_per_h``);
    ``""`` for a dimensionless one, None for one this table cannot spell."""
    if unit is None:
        return ""
    u = unit.strip().lower().replace("²", "2").replace("³", "3").replace("deg ", "deg")
    u = re.sub(r"(?<=[a-z0-9])\s*[·*.\s]\s*(?=[a-z])", "", u)  # kW·h, kW h, kW.h -> kwh
    if u in _DIMENSIONLESS:
        return ""
    return _UNIT_SUFFIX.get(u)


def field_name(browse_name: str, unit: str | None) -> tuple[str, str | None]:
    """(field name, a note for the engineer or None)."""
    suffix = unit_suffix(unit)
    base = snake(browse_name)
    if suffix is None:
        return base, f"unit {unit!r} not recognised: put it into the field name"
    if suffix:
        # a name that already carries the unit (Energy_kWh, EnergyKWh, energy_kwh) keeps it once
        trimmed = re.sub("_" + "_?".join(re.escape(c) for c in suffix.replace("_", "")) + "$", "", base)
        if trimmed:
            base = trimmed
        base = f"{base}_{suffix}"
    return base, None


async def walk(url: str, username: str | None = None, password: str | None = None, max_nodes: int = 100_000,
               timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Return [{group, asset, nodes: [{field, node_id, unit, note}], skipped: [(name, node_id, why)]}] for the
    variables under Objects (the server's namespace 0 left out)."""
    from asyncua import Client, ua

    client = Client(url, timeout=timeout_s, watchdog_intervall=30.0)
    if username:
        client.set_user(username)
        client.set_password(password or "")
    groups: dict[str, dict[str, Any]] = {}

    def group(parent_name: str) -> dict[str, Any]:
        return groups.setdefault(parent_name, {"group": snake(parent_name), "asset": parent_name, "nodes": [], "skipped": []})

    async with client:
        stack = [(client.nodes.objects, "Objects")]
        seen = 0
        while stack and seen < max_nodes:
            node, parent_name = stack.pop()
            for ref in await node.get_children_descriptions():
                seen += 1
                if ref.NodeId.NamespaceIndex == 0:
                    continue  # the server's own nodes
                child = client.get_node(ref.NodeId)
                name = ref.BrowseName.Name
                if ref.NodeClass == ua.NodeClass.Object:
                    stack.append((child, name))
                    continue
                if ref.NodeClass != ua.NodeClass.Variable:
                    continue
                why = await _cannot_carry(child, ua)
                if why:
                    group(parent_name)["skipped"].append((name, ref.NodeId.to_string(), why))
                    continue
                unit = None
                try:
                    info = await (await child.get_child("0:EngineeringUnits")).read_value()
                    unit = info.DisplayName.Text if info and info.DisplayName else None
                except Exception:  # noqa: BLE001 - no EngineeringUnits property
                    pass
                field, note = field_name(name, unit)
                group(parent_name)["nodes"].append({"field": field, "node_id": ref.NodeId.to_string(), "unit": unit, "note": note})
    return list(groups.values())


async def _cannot_carry(node, ua) -> str | None:
    """Why the gateway cannot carry this variable's values (None: it can)."""
    try:
        dt = await node.read_data_type()
        rank = (await node.read_attribute(ua.AttributeIds.ValueRank)).Value.Value
    except Exception as exc:  # noqa: BLE001
        return f"its attributes cannot be read ({type(exc).__name__})"
    if dt.NamespaceIndex != 0 or dt.Identifier not in _NUMERIC:
        try:
            value = await node.read_value()
        except Exception:  # noqa: BLE001
            value = None
        kind = ("a structure" if dataclasses.is_dataclass(value) or isinstance(value, ua.ExtensionObject)
                else "text" if isinstance(value, str) else "not numeric")
        return f"data type {dt.to_string()} is {kind}"
    if rank is not None and rank >= 0:
        return f"an array (ValueRank {rank}): one sample per value cannot carry it"
    if rank in (-2, -3):  # scalar or array: what it holds now decides
        try:
            if isinstance(await node.read_value(), (list, tuple)):
                return f"holds an array now (ValueRank {rank})"
        except Exception:  # noqa: BLE001
            pass
    return None


def render_yaml(url: str, groups: list[dict[str, Any]], measurement: str | None = None) -> str:
    lines = [
        "# generated by `plantmrv gateway browse`: paste under gateway.sources, then review it;",
        "# check-config checks the names against docs/data-model.md (schema: data_model)",
        "- type: opcua",
        "  name: plc1",
        f"  url: {url}",
        "  schema: data_model",
        "  groups:",
    ]
    known = DATA_MODEL.get(measurement or "", None)
    for g in groups:
        if not g["nodes"]:
            lines.append(f"    # object {g['asset']}: nothing the gateway can carry")
        else:
            lines += [f"    - name: {g['group']}", "      mode: subscription"]
            if measurement:
                lines.append(f"      measurement: {measurement}")
            else:
                lines.append("      # measurement:                # REQUIRED, the asset class: " + ", ".join(DATA_MODEL))
            lines += [f"      asset: {g['asset']!r}" if not re.match(r"^[A-Za-z0-9_.-]+$", g["asset"]) else f"      asset: {g['asset']}",
                      "      publishing_interval_ms: 1000", "      nodes:"]
            fields_seen = set()
            for n in g["nodes"]:
                notes = [n["unit"]] if n["unit"] else []
                if n["note"]:
                    notes.append(n["note"])
                if known is not None and n["field"] not in known:
                    notes.append(f"not a field of {measurement} in docs/data-model.md: rename it")
                entry = f"{{field: {n['field']}, node_id: \"{n['node_id']}\"}}"
                if n["field"] in fields_seen:
                    lines.append(f"        # - {entry}   # field name repeats in this group: rename it")
                    continue
                fields_seen.add(n["field"])
                lines.append(f"        - {entry}" + (f"   # {'; '.join(notes)}" if notes else ""))
        for name, node_id, why in g["skipped"]:
            lines.append(f"        # skipped {name} ({node_id}): {why}")
    return "\n".join(lines) + "\n"
