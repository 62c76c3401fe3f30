"""The README and docs/ say only what is true: their examples run, their commands and files exist.

- Every ```console block is run (in bash, from the repository root, `plantmrv` from this venv)
  and must print exactly what the block shows after each `$ ` line.
- Every `plantmrv ...` command they name is a real command, with real options.
- Every repository path they name exists, or is made by a step they name.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from plantmrv.app.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
# made by the operator or a build, each by a step the docs name
MADE_BY_A_STEP = {
    "deploy/secrets": "deploy/make-secrets.sh",
    "deploy/mosquitto/passwd": "mosquitto_passwd",
    "deploy/mosquitto/certs": "make-certs.sh",
    "deploy/.env": "deploy/.env.example",
    "demo-out": "make demo",
    "dist": "make dist",
}


def _blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in re.finditer(rf"^```{lang}\n(.*?)^```$", text, re.M | re.S)]


def _console_examples():
    for path in DOCS:
        for line, block in _blocks(path, "console"):
            yield pytest.param(block, id=f"{path.name}:{line}")


@pytest.mark.parametrize("block", list(_console_examples()))
def test_console_examples_print_what_they_show(block):
    commands, expected = [], []
    for line in block.splitlines():
        if line.startswith("$ "):
            commands.append(line[2:])
            expected.append(None)  # where this command's output starts
        else:
            expected.append(line)
    script = "\n".join(f"{c} 2>&1" for c in commands)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    shown = "\n".join(x for x in expected if x is not None)
    assert proc.stdout.rstrip("\n") == shown, f"ran:\n{script}\ngot:\n{proc.stdout}{proc.stderr}"


def _mentions() -> list[tuple[str, str]]:
    """(where, command line) for each `plantmrv ...` in code spans and shell blocks."""
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"`(plantmrv [^`]+)`", text):
            out.append((f"{path.name}:{text[: m.start()].count(chr(10)) + 1}", m.group(1)))
        for lang in ("sh", "console"):
            for line, block in _blocks(path, lang):
                for i, cmd in enumerate(block.splitlines()):
                    m = re.search(r"(?:^|\$ |\| |/bin/)(plantmrv (?:[^#|>]*))", cmd)
                    if m:
                        out.append((f"{path.name}:{line + i + 1}", m.group(1)))
    return out


def _resolve(words: list[str]):
    cmd = get_command(app)
    path = []
    for w in words:
        commands = getattr(cmd, "commands", {})
        if w in commands:
            cmd = commands[w]
            path.append(w)
        else:
            break
    return cmd, path


def test_every_command_the_docs_name_exists_with_its_options():
    mentions = _mentions()
    assert len(mentions) > 30
    bad = []
    for where, line in mentions:
        line = line.replace("\\|", "|")
        words = shlex.split(line.split("|")[0], posix=True) if line.count("'") % 2 == 0 else line.split()
        cmd, path = _resolve(words[1:])
        if not path and not (len(words) > 1 and words[1].startswith("-")):
            bad.append(f"{where}: `{line}`: plantmrv has no command {words[1] if len(words) > 1 else ''!r}")
            continue
        known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])} | {"--help", "-h"}
        if cmd is get_command(app):
            known |= {"--version", "-V", "--install-completion", "--show-completion"}
        for w in words[1 + len(path):]:
            if w.startswith("-") and w.split("=")[0] not in known:
                bad.append(f"{where}: `{line}`: plantmrv {' '.join(path)} has no option {w}")
    assert not bad, "\n".join(bad)


def test_every_repository_path_the_docs_name_exists():
    bad = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"(?<![\w/.$-])((?:examples|deploy|docs|bench|dashboards|scripts|tests|analytics|gateway|ingest|plantmrv|simulators)/[\w./-]*[\w-])", text):
            rel = m.group(1)
            if any(rel == k or rel.startswith(k + "/") for k in MADE_BY_A_STEP):
                step = next(v for k, v in MADE_BY_A_STEP.items() if rel == k or rel.startswith(k + "/"))
                if step not in text and step not in (ROOT / "README.md").read_text():
                    bad.append(f"{path.name}: {rel} is made by {step}, which is not named")
                continue
            if "<" in rel or "*" in rel or rel.startswith("plantmrv/v1"):  # placeholders; the MQTT topic prefix
                continue
            if not (ROOT / rel).exists():
                bad.append(f"{path.name}:{text[: m.start()].count(chr(10)) + 1}: {rel} does not exist")
    assert not bad, "\n".join(bad)
