"""`GET /`: a small page that says where to go — the manager app, the API document and, on a demo
database, one survey page per agency — in the reader's language, instead of a JSON 404."""

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.enums import MediaType

from feedback import __version__
from feedback.catalog import Snapshot
from feedback.i18n import ENDONYMS, HTML_LANG, gettext_for
from feedback.models import LANGUAGES
from feedback.store import Connection
from feedback.store import exposure as exposure_store
from feedback.store import organisation as organisation_store
from feedback.web.access import fresh_snapshot
from feedback.web.manage.reports import public_env, public_language

DEMO_SOURCE = "demo"  # what `feedback demo` writes as the source of its exposure counts


def demo_surveys(conn: Connection) -> dict[str, str]:
    """One QR touchpoint token per agency when the database holds the demo's history, else none."""
    if not exposure_store.has_source(conn, DEMO_SOURCE):
        return {}
    return organisation_store.first_touchpoint_per_root(conn, "qr")


async def _demo_surveys(state: State) -> dict[str, str]:
    # A database is made a demo only while no server holds it (`demo --force` refuses), so once is enough.
    if "landing_demo_surveys" not in state:
        state["landing_demo_surveys"] = await state.store.read(demo_surveys)
    return state["landing_demo_surveys"]


def survey_links(snapshot: Snapshot, found: dict[str, str], lang: str) -> list[dict[str, Any]]:
    """The agencies' survey pages, by the agency's name in the reader's language."""
    links = [
        {"href": f"/s/{token}", "name": snapshot.unit_name(root, lang)}
        for root, token in found.items()
        if token in snapshot.touchpoints and root in snapshot.units
    ]
    return sorted(links, key=lambda link: link["name"])


@get("/", name="landing", include_in_schema=False)
async def landing(request: Request, state: State) -> Response:
    """Where to go from here, in the language asked (`?lang=`, the language cookie, Accept-Language)."""
    lang = public_language(request, "en")
    _ = gettext_for(lang)
    snapshot = await fresh_snapshot(state)
    html = public_env.get_template("landing.html").render(
        _=_,
        lang=lang,
        html_lang=HTML_LANG[lang],
        asset_version=__version__,
        switch_langs=[(code, ENDONYMS[code]) for code in LANGUAGES],
        base_path="/",
        case_query="",
        surveys=survey_links(snapshot, await _demo_surveys(state), lang),
    )
    # The language comes from the request: shared caches must not hand one reader's page to another.
    return Response(html, media_type=MediaType.HTML, headers={"cache-control": "private, no-cache"})


LANDING_ROUTES: list = [landing]
