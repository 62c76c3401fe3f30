"""Headless Chromium (Debian's ``chromium``) for tests that look at a page as a person would.

Flags as documented for this machine: no sandbox (root), no GPU, no background networking, a new
empty profile per run. A missing browser fails the test with the reason (never a skip).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1"]

#: finds every element whose box reaches past the page's content width, or whose content is
#: wider than its box (clipped or scrolling), and writes the list into the DOM
OVERFLOW_SCRIPT = """<script>
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth, out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > width + 0.5 || r.left < -0.5) out.push(['outside', el.tagName, el.textContent.slice(0, 40), Math.round(r.right)]);
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline') out.push(['clipped', el.tagName, el.textContent.slice(0, 40), el.scrollWidth, el.clientWidth]);
  }
  const pre = document.createElement('pre'); pre.id = 'overflow-report'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("Debian's chromium is not installed (scripts/ensure-services.sh installs it)", pytrace=False)
    return exe


def _run(args: list[str], tmp: Path, timeout: float = 90.0) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, text=True)


def screenshot(html: Path, png: Path, width: int, height: int) -> Path:
    r = _run([f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri()], png.parent)
    if not png.exists():
        pytest.fail(f"chromium made no screenshot (exit {r.returncode}): {r.stderr[-2000:]}", pytrace=False)
    return png


def print_pdf(html: Path, pdf: Path) -> Path:
    r = _run(["--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri()], pdf.parent)
    if not pdf.exists():
        pytest.fail(f"chromium printed no PDF (exit {r.returncode}): {r.stderr[-2000:]}", pytrace=False)
    return pdf


def overflow(html_text: str, tmp: Path, width: int) -> list:
    """Elements that overflow a page ``width`` CSS pixels wide (empty when none does)."""
    page = tmp / "overflow-check.html"
    page.write_text(html_text.replace("</body>", OVERFLOW_SCRIPT + "</body>"), encoding="utf-8")
    r = _run([f"--window-size={width},2000", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()], tmp)
    start = r.stdout.find('<pre id="overflow-report">')
    if start < 0:
        pytest.fail(f"the overflow check did not run (exit {r.returncode}): {r.stderr[-2000:]}", pytrace=False)
    body = r.stdout[start + len('<pre id="overflow-report">'): r.stdout.index("</pre>", start)]
    import html as _html

    return json.loads(_html.unescape(body))


def ocr(png: Path, lang: str) -> str:
    """Text in a screenshot, read by tesseract (``eng`` or ``jpn``)."""
    exe = shutil.which("tesseract")
    if not exe:
        pytest.fail("tesseract is not installed (scripts/ensure-services.sh installs it)", pytrace=False)
    r = subprocess.run([exe, str(png), "stdout", "-l", lang, "--psm", "3"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"tesseract failed: {r.stderr[-1000:]}", pytrace=False)
    return r.stdout
