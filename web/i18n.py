"""Interface text in Spanish (default) and English, from gettext catalogs; the page's language
comes from ?lang=, a cookie or the browser (Flask-Babel's locale selector).

The catalogs are web/translations/<lang>/LC_MESSAGES/messages.po, edited with any gettext tool
(Poedit, Weblate as "monolingual gettext", msgmerge). Each msgid is a stable key ("flows",
"status_failed", "builder_title_new") rather than a sentence, because pages build keys from
data (``t('status_' ~ run.status)``, ``t('role_' ~ user.role)``) and the builder's script gets
every ``builder_`` text: Spanish and English are both translations of the key, and the Spanish
text is the fallback of a key missing in English. The .mo files are compiled from the .po files
when the app starts (and when a .po is newer), so a changed text needs no build step.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import Flask, g, has_request_context, request
from flask.wrappers import Response
from flask_babel import Babel

LANGUAGES = ("es", "en")
# The Babel locale each language formats numbers, money and dates with.
LOCALES = {"es": "es_ES", "en": "en_GB"}
COOKIE = "puente_lang"
CATALOGS = Path(__file__).parent / "translations"
DOMAIN = "messages"


def compile_catalogs() -> None:
    """Compile every .po newer than its .mo (written aside and renamed: processes may race)."""
    for po in CATALOGS.glob(f"*/LC_MESSAGES/{DOMAIN}.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parent.parent.name)
        partial = mo.with_name(f".{mo.name}.{os.getpid()}")
        with partial.open("wb") as target:
            write_mo(target, catalog)
        os.replace(partial, mo)


@cache
def catalog(lang: str) -> Translations:
    """One language's messages; a key it lacks falls back to Spanish."""
    compile_catalogs()
    translations = Translations.load(str(CATALOGS), [lang], DOMAIN)
    if not isinstance(translations, Translations):
        raise RuntimeError(f"no compiled catalog for {lang!r} in {CATALOGS}")
    if lang != "es":
        translations.add_fallback(catalog("es"))
    return translations


def language() -> str:
    """The language of the page being made ("es" outside a request: mails, the worker)."""
    return str(getattr(g, "lang", "es")) if has_request_context() else "es"


def translate(key: str, lang: str | None = None) -> str:
    return catalog(lang or language()).gettext(key)


@cache
def keys(prefix: str = "") -> tuple[str, ...]:
    """Every message key (starting with prefix), in the catalog's order."""
    with (CATALOGS / "es" / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as source:
        return tuple(str(m.id) for m in read_po(source) if m.id and str(m.id).startswith(prefix))


def _choose() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    return request.accept_languages.best_match(LANGUAGES, default="es") or "es"


def init_app(app: Flask) -> None:
    compile_catalogs()
    Babel(
        app,
        locale_selector=lambda: LOCALES[language()],
        timezone_selector=lambda: "Europe/Madrid",
        default_translation_directories=str(CATALOGS),
        default_domain=DOMAIN,
    )

    @app.before_request
    def pick_language() -> None:
        g.lang = _choose()

    @app.after_request
    def remember_language(response: Response) -> Response:
        if request.args.get("lang") in LANGUAGES:
            response.set_cookie(
                COOKIE, request.args["lang"], max_age=365 * 86400, samesite="Lax", httponly=True
            )
        return response

    @app.context_processor
    def inject() -> dict[str, Any]:
        return {"t": translate, "lang": language(), "languages": LANGUAGES}
