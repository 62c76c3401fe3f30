"""``python -m plantmrv.i18n update``: extract the template and merge it into every catalogue.

- ``template`` prints the catalogue template (``catalogues/plantmrv.pot``) extracted from the
  sources that show text to people (:data:`SOURCES`), plus the texts that are data rather than
  literals in them (:data:`GENERATED`: the methodology registry's descriptions the xlsx shows);
- ``update`` writes that template and merges it into each ``catalogues/<lang>.po`` (new messages
  empty, messages gone from the sources marked obsolete), as ``pybabel update`` does;
- ``check`` exits 1 listing the messages a catalogue leaves untranslated.
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from . import CATALOGUE_DIR, DEFAULT_LANGUAGE, DOMAIN, KEYWORDS, catalogue, languages

#: modules whose strings people read (packages: every .py file in them)
SOURCES = ("plantmrv.dashboards", "plantmrv.analytics.report_html", "plantmrv.analytics.cli", "plantmrv.api")
#: functions (``module:function``) yielding ``(message, translator comment)`` of texts that are
#: data, not literals: what the sources translate at run time with ``gettext(text)``
GENERATED = ("plantmrv.api.workbook:catalogue_messages",)
TEMPLATE = CATALOGUE_DIR / f"{DOMAIN}.pot"


def _files() -> list[tuple[Path, Path]]:
    out = []
    for name in SOURCES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if hasattr(mod, "__path__"):
            root = Path(next(iter(mod.__path__)))
            out += [(f, Path(name.replace(".", "/")) / f.relative_to(root)) for f in sorted(root.rglob("*.py"))]
        else:
            out.append((Path(mod.__file__), Path(name.replace(".", "/") + ".py")))
    return out


def template() -> Catalog:
    """The catalogue template: every marked message of :data:`SOURCES`, with its locations."""
    cat = Catalog(domain=DOMAIN, project="plantmrv", version=None, msgid_bugs_address=None, copyright_holder=None, charset="utf-8")
    for path, shown in _files():
        for lineno, message, comments, context in extract_from_file("python", str(path), keywords=KEYWORDS, comment_tags=("i18n:",), strip_comment_tags=True):
            cat.add(message, None, [(shown.as_posix(), lineno)], auto_comments=comments, context=context)
    for spec in GENERATED:
        module, function = spec.split(":")
        try:
            messages = getattr(importlib.import_module(module), function)()
        except ModuleNotFoundError:
            continue
        for message, comment in messages:
            if message and message not in cat:
                cat.add(message, None, [(module.replace(".", "/") + ".py", 0)], auto_comments=[comment])
    return cat


def _render(cat: Catalog, **kw) -> bytes:
    """PO text without source locations (they would change with every edit of the sources) or dates."""
    cat.fuzzy = False
    cat.header_comment = (
        f"# plantmrv message catalogue ({cat.locale or 'template'}): the English text is the msgid.\n"
        "# Translate the msgstr lines; `python -m plantmrv.i18n update` refreshes the msgids from the sources."
    )
    cat.last_translator = "plantmrv"
    cat.language_team = "plantmrv"
    buf = io.BytesIO()
    write_po(buf, cat, width=0, omit_header=False, sort_output=False, no_location=True, **kw)
    # the creation date changes on every run; keep the files stable
    return b"\n".join(line for line in buf.getvalue().split(b"\n") if not line.startswith((b'"POT-Creation-Date', b'"PO-Revision-Date')))


def render_template() -> bytes:
    return _render(template())


def update() -> list[Path]:
    """Write the template and merge it into every catalogue; return the files written."""
    tpl = template()
    TEMPLATE.write_bytes(_render(tpl))
    written = [TEMPLATE]
    for lang in languages():
        if lang == DEFAULT_LANGUAGE:
            continue
        path = CATALOGUE_DIR / f"{lang}.po"
        with open(path, "rb") as fh:
            cat = read_po(fh, locale=lang, domain=DOMAIN)
        cat.update(tpl, no_fuzzy_matching=True)
        path.write_bytes(_render(cat, ignore_obsolete=True))
        written.append(path)
    catalogue.cache_clear()
    return written


def untranslated(lang: str) -> list[str]:
    """Messages of the template that ``lang``'s catalogue leaves empty or fuzzy."""
    table = {m.id: m for m in catalogue(lang) if m.id}
    out = []
    for m in template():
        if not m.id:
            continue
        t = table.get(m.id)
        if t is None or t.fuzzy or not (all(t.string) if isinstance(t.string, tuple) else t.string):
            out.append(m.id if isinstance(m.id, str) else m.id[0])
    return out


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "template":
        sys.stdout.buffer.write(render_template())
        return 0
    if cmd == "update":
        for p in update():
            print(f"wrote {p}")
        return 0
    if cmd == "check":
        bad = 0
        for lang in languages()[1:]:
            missing = untranslated(lang)
            for m in missing:
                print(f"{CATALOGUE_DIR / (lang + '.po')}: msgid {m!r}: not translated")
            bad += len(missing)
        return 1 if bad else 0
    print(f"unknown command {cmd!r}: use template, update or check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
