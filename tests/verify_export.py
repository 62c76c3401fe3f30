#!/usr/bin/env python3
"""A verifier's check of a plantmrv export, written from docs/verifier.md alone.

It imports nothing from plantmrv (the standard library, and openpyxl for xlsx files) and trusts
nothing about how the file arrived: not the HTTP status, not a clean end of the transfer.

    python tests/verify_export.py EXPORT.csv [--report REPORT.json]
    python tests/verify_export.py EXPORT.xlsx [--report REPORT.json]

Exit 0 and ``complete`` with the recomputed hashes, or exit 1 and ``INCOMPLETE: ...`` (no
trailer, bytes that do not hash to it) or ``MISMATCH: ...`` (the data do not hash to what the
trailer or the monitoring report states).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import struct
import sys
from pathlib import Path

TRAILER = b"#section,trailer\r\n"
END = b"#end\r\n"


class Incomplete(Exception):
    pass


class Mismatch(Exception):
    pass


def unneutralise(cell: str) -> str:
    """Text cells starting with = + - @ tab CR ' (or their full-width forms) were written with one leading '."""
    return cell[1:] if cell.startswith("'") else cell


def _bits(value: float) -> int:
    return struct.unpack(">Q", struct.pack(">d", float("nan") if math.isnan(value) else value))[0]


def rows_sha256(rows: list[tuple[int, float]]) -> str:
    """16 bytes per row, ascending ts_ns then value bits: ts_ns signed 64-bit big-endian, value binary64 big-endian."""
    h = hashlib.sha256()
    for ts, value in sorted(rows, key=lambda r: (r[0], _bits(r[1]))):
        h.update(struct.pack(">q", ts) + struct.pack(">Q", _bits(value)))
    return h.hexdigest()


def data_sha256(points: list[tuple[str, str, str, str]], rows_of: dict[tuple, list[tuple[int, float]]]) -> tuple[int, str]:
    """(rows, data_sha256): one JSON line [measurement, site, asset, field, rows, rows_sha256] per distinct point."""
    lines, total = [], 0
    for key in points:
        rows = rows_of.get(key, [])
        total += len(rows)
        lines.append(json.dumps([*key, len(rows), rows_sha256(rows)], separators=(",", ":"), ensure_ascii=True) + "\n")
    return total, hashlib.sha256("".join(lines).encode()).hexdigest()


def _distinct(keys):
    out = []
    for k in keys:
        if k not in out:
            out.append(k)
    return out


def sections(text: str) -> dict[str, list[list[str]]]:
    """``#section,<name>`` blocks of a CSV export: name -> rows (header first), cells unneutralised."""
    out: dict[str, list[list[str]]] = {}
    name = None
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == "#section":
            name = row[1]
            out[name] = []
        elif name is not None:
            out[name].append([unneutralise(c) for c in row])
    return out


def records(block: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(block[0], r)) for r in block[1:]]


def check_csv(data: bytes, report: dict | None = None) -> dict:
    if not data.endswith(END):
        raise Incomplete("the file does not end with the #end line")
    at = data.rfind(b"\n" + TRAILER)
    if at < 0:
        raise Incomplete("no #section,trailer")
    content, trailer_text = data[: at + 1], data[at + 1 :]
    trailer = {r[0]: r[1] for r in sections(trailer_text.decode())["trailer"][1:] if len(r) == 2}
    if hashlib.sha256(content).hexdigest() != trailer.get("content_sha256"):
        raise Incomplete("the bytes before the trailer do not hash to its content_sha256")
    if content.count(b"\n") != int(trailer.get("content_lines", -1)):
        raise Incomplete("line count differs from the trailer's content_lines")
    sec = sections(content.decode())
    keys = _distinct((r["measurement"], r["site"], r["asset"], r["field"]) for r in records(sec["monitoring_points"]))
    rows_of: dict[tuple, list] = {}
    for r in records(sec["raw"]):
        rows_of.setdefault((r["measurement"], r["site"], r["asset"], r["field"]), []).append((int(r["ts_ns"]), float(r["value"]) if r["value"] else math.nan))
    meta = {m["key"]: m["value"] for m in records(sec["meta"])}
    raw_rows, data_hash = data_sha256(keys if meta["raw"] == "included" else [], rows_of)
    intervals = records(sec["intervals"])
    cols = sec["intervals"][0]
    lines = "".join(",".join(r[cols.index("ts_ns") : cols.index("params_hash") + 1]) + "\n" for r in sec["intervals"][1:])
    found = {
        "raw_rows": raw_rows, "data_sha256": data_hash, "intervals": len(intervals),
        "intervals_sha256": hashlib.sha256(lines.encode()).hexdigest(),
        "parameters_sha256": meta["parameters_sha256"],
    }
    _compare(found, trailer, "trailer")
    _against_report(found, report, meta["from_utc"], meta["to_utc"])
    return found | {"content_sha256": trailer["content_sha256"], "checks": trailer["checks"]}


def check_xlsx(path: Path, report: dict | None = None) -> dict:
    import zipfile

    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True)
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        raise Incomplete(f"not a complete xlsx: {exc.__class__.__name__}: {exc}") from None
    if "Trailer" not in wb.sheetnames:
        raise Incomplete("no Trailer sheet")
    trailer_rows = [[unneutralise(c or "") for c in r] for r in wb["Trailer"].iter_rows(values_only=True)]
    if not trailer_rows or trailer_rows[-1][0] != "#end":
        raise Incomplete("the Trailer sheet does not end with #end")
    trailer = {r[0]: r[1] for r in trailer_rows[1:-1]}
    keys, rows_of, key = [], {}, None
    for r in wb["Raw"].iter_rows(values_only=True):
        if not r or r[0] is None:
            continue
        if r[0] == "#point":
            key = tuple(unneutralise(c or "") for c in r[1:5])
            keys.append(key)
            rows_of.setdefault(key, [])
        elif r[0] != "ts_ns":
            rows_of[key].append((int(r[0]), math.nan if r[2] is None else float(r[2])))
    project = {r[0]: r[1] for r in wb["Project"].iter_rows(values_only=True) if r and r[0]}
    raw_rows, data_hash = data_sha256(_distinct(keys), rows_of)
    found = {"raw_rows": raw_rows, "data_sha256": data_hash, "parameters_sha256": unneutralise(project["parameters_sha256"])}
    _compare(found, trailer, "trailer")
    _against_report(found, report, unneutralise(project["from_utc"]), unneutralise(project["to_utc"]))
    return found | {"checks": trailer["checks"]}


def _compare(found: dict, stated: dict, where: str) -> None:
    for k, v in found.items():
        if str(v) != str(stated.get(k)):
            raise Mismatch(f"{k}: the file's data give {v}, the {where} states {stated.get(k)}")


def _against_report(found: dict, report: dict | None, start: str, end: str) -> None:
    if report is None:
        return
    piece = next((p for p in report["exports"] if p["start"].replace("+00:00", "Z") == start and p["end"].replace("+00:00", "Z") == end), None)
    if piece is None:
        raise Mismatch(f"the monitoring report covers no export {start} .. {end}")
    _compare({k: v for k, v in found.items() if k in piece}, piece, "monitoring report")
    if found["parameters_sha256"] != report["parameters_sha256"]:
        raise Mismatch("parameters_sha256 differs from the monitoring report's")


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    report = json.loads(Path(argv[argv.index("--report") + 1]).read_text()) if "--report" in argv else None
    try:
        found = check_xlsx(path, report) if path.suffix == ".xlsx" else check_csv(path.read_bytes(), report)
    except Incomplete as exc:
        print(f"INCOMPLETE: {exc}")
        return 1
    except Mismatch as exc:
        print(f"MISMATCH: {exc}")
        return 1
    print("complete " + " ".join(f"{k}={v}" for k, v in found.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
