"""Message catalogues: every text a person reads (dashboards, alerts, reports, CLI output).

Standard gettext: the English text is the message id, ``catalogues/<lang>.po`` holds the
translations (PO files, edited with any PO editor), ``catalogues/plantmrv.pot`` is the template
extracted from the sources. English is the default and needs no catalogue; Japanese (``ja``) is
complete; a third language is one file away: copy the template to ``catalogues/<lang>.po``,
translate, done (``python -m plantmrv.i18n update`` refreshes the template and merges it into
every catalogue after a source change).

Usage, from any wing (this module imports nothing of the wings)::

    from plantmrv.i18n import gettext as _, N_

    _("Flow", lang="ja")                 # -> "流量"
    with language("ja"):                 # default language of this context (thread / task)
        _("Flow")                        # -> "流量"
    TITLE = N_("Pump station")           # marks a constant for extraction; translate at use
    ngettext("{n} day", "{n} days", n, lang="ja").format(n=n)

A message missing from a catalogue falls back to English (never an error at run time); the
tests check that ``ja.po`` translates every message of the template.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from pathlib import Path
from typing import Iterator

CATALOGUE_DIR = Path(__file__).parent / "catalogues"
DOMAIN = "plantmrv"
DEFAULT_LANGUAGE = "en"
#: keywords the extractor looks for (``N_`` marks without translating)
KEYWORDS = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("plantmrv_language", default=DEFAULT_LANGUAGE)


class UnknownLanguage(ValueError):
    """A language with no catalogue was asked for."""


def languages() -> list[str]:
    """Languages with a catalogue, English first."""
    return [DEFAULT_LANGUAGE] + sorted(p.stem for p in CATALOGUE_DIR.glob("*.po") if p.stem != DEFAULT_LANGUAGE)


def check_language(lang: str) -> str:
    """``lang`` if it has a catalogue (or is English), else :class:`UnknownLanguage` naming the choices."""
    if lang == DEFAULT_LANGUAGE or (CATALOGUE_DIR / f"{lang}.po").is_file():
        return lang
    raise UnknownLanguage(f"language {lang!r} has no catalogue ({CATALOGUE_DIR}/{lang}.po); available: {', '.join(languages())}")


@functools.lru_cache(maxsize=None)
def catalogue(lang: str):
    """The parsed ``babel.messages.Catalog`` of ``lang`` (None for English)."""
    check_language(lang)
    if lang == DEFAULT_LANGUAGE:
        return None
    from babel.messages.pofile import read_po

    with open(CATALOGUE_DIR / f"{lang}.po", "rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


@functools.lru_cache(maxsize=None)
def _table(lang: str) -> dict:
    cat = catalogue(lang)
    out: dict = {}
    if cat is None:
        return out
    for m in cat:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, tuple):
            if all(m.string):
                out[m.id] = tuple(m.string)
        elif m.string:
            out[m.id] = m.string
    return out


def current_language() -> str:
    return _current.get()


@contextlib.contextmanager
def language(lang: str) -> Iterator[str]:
    """Make ``lang`` the default of :func:`gettext` in this context (thread / asyncio task)."""
    token = _current.set(check_language(lang))
    try:
        yield lang
    finally:
        _current.reset(token)


def gettext(message: str, lang: str | None = None) -> str:
    """``message`` (English) in ``lang`` (default: the context's language, English)."""
    lang = lang or _current.get()
    if lang == DEFAULT_LANGUAGE or not message:
        return message
    return _table(lang).get(message, message)


_ = gettext


def ngettext(singular: str, plural: str, n: int, lang: str | None = None) -> str:
    """Plural-aware lookup (``n`` picks the form by the language's plural rule)."""
    lang = lang or _current.get()
    if lang != DEFAULT_LANGUAGE:
        forms = _table(lang).get((singular, plural))
        if forms:
            cat = catalogue(lang)
            idx = cat.plural_expr and _plural_index(cat.plural_expr, n)
            return forms[min(idx or 0, len(forms) - 1)]
    return singular if n == 1 else plural


@functools.lru_cache(maxsize=None)
def _plural_rule(expr: str):
    import gettext as _stdlib_gettext

    return _stdlib_gettext.c2py(expr)  # the PO header's C expression, parsed safely by the stdlib


def _plural_index(expr: str, n: int) -> int:
    return int(_plural_rule(expr)(n))


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (translate where it is shown)."""
    return message


def translator(lang: str | None = None):
    """A ``_(message)`` bound to ``lang`` (for code that prefers an explicit callable)."""
    lang = check_language(lang or _current.get())
    return functools.partial(gettext, lang=lang)


def fill(message: str, **values) -> str:
    """``message`` with ``{name}`` / ``{name:spec}`` replaced for the given names only, so text
    that carries another template syntax (Grafana's ``{{ $labels.site }}``) passes through."""
    import re

    def sub(m: "re.Match") -> str:
        name, spec = m.group(1), m.group(2) or ""
        return format(values[name], spec[1:]) if name in values else m.group(0)

    return re.sub(r"(?<!\{)\{(\w+)(:[^{}]*)?\}(?!\})", sub, message)
