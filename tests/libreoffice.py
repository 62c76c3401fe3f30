"""Recalculate xlsx workbooks in LibreOffice Calc (Debian's ``libreoffice-calc-nogui``), headless.

One ``soffice`` process converts every workbook given (xlsx -> xlsx) in a throw-away profile
whose Calc setting forces recalculation on load to "always" (``OOXMLRecalcMode`` 0); before
loading, every formula cell's stored result is replaced by a marker value, so only a real
recalculation can put the right number there. Read the converted files with openpyxl
(``data_only=True``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

#: the value every formula cell carries before LibreOffice loads the workbook
CORRUPT = -7.654321e99
ERRORS = ("#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#N/A", "#NUM!", "#NULL!", "Err:")

_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""
_FORMULA_CELL = re.compile(rb"(<c [^>]*?)(?: t=\"[a-z]+\")?([^>]*>)<f>(.*?)</f>(?:<v>[^<]*</v>|<v\s*/>)?</c>", re.S)


def soffice() -> str:
    path = shutil.which("soffice") or shutil.which("libreoffice")
    if path is None:
        raise AssertionError("LibreOffice Calc is not installed: apt-get install libreoffice-calc-nogui (scripts/ensure-services.sh does)")
    return path


def corrupt(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` with :data:`CORRUPT` stored as every formula's result; returns
    the number of formula cells."""
    count = 0
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.startswith("xl/worksheets/") and item.filename.endswith(".xml"):
                data, n = _FORMULA_CELL.subn(lambda m: m.group(1) + m.group(2) + b"<f>" + m.group(3) + b"</f><v>" + repr(CORRUPT).encode() + b"</v></c>", data)
                count += n
            zout.writestr(item, data)
    return count


def recalculate(paths: list[Path], workdir: Path, timeout_s: float = 300) -> dict[Path, Path]:
    """Recalculate ``paths`` in one LibreOffice process; returns {input: recalculated copy}."""
    profile = workdir / "lo-profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(_PROFILE)
    src, out = workdir / "lo-in", workdir / "lo-out"
    src.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    staged = []
    for p in paths:
        s = src / p.name
        if corrupt(p, s) == 0:
            raise AssertionError(f"{p}: no formula cell")
        staged.append(s)
    cmd = [soffice(), f"-env:UserInstallation={profile.resolve().as_uri()}", "--headless", "--norestore", "--nolockcheck",
           "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), *map(str, staged)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    result = {p: out / p.name for p in paths}
    missing = [str(p) for p, r in result.items() if not r.is_file()]
    if proc.returncode != 0 or missing:
        raise AssertionError(f"LibreOffice failed (exit {proc.returncode}), not converted: {missing}\n{proc.stdout}\n{proc.stderr}")
    return result
