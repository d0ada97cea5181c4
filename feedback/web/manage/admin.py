"""The admin pages at /manage/admin: units, services, touchpoints, kiosks, surveys, objectives and the catalogue
import.

Admins see everything; managers only their unit's subtree; auditors and viewers may look but are
shown no forms and are refused (403) if they post.
"""

from litestar import Request, Response, get
from litestar.di import NamedDependency

from feedback.catalog import Snapshot
from feedback.web.manage import admin_fleet, admin_import, admin_objectives, admin_org, admin_surveys, auth
from feedback.web.manage.admin_common import EXCEPTION_HANDLERS, PREFIX, page, page_lang, unit_name, visible_units
from feedback.web.security import Principal


@get(
    PREFIX,
    include_in_schema=False,
    dependencies={"principal": auth.SESSION},
    exception_handlers=EXCEPTION_HANDLERS,
)
async def admin_index(
    request: Request, principal: NamedDependency[Principal], snapshot: NamedDependency[Snapshot]
) -> Response:
    lang = page_lang(request)
    units = [(code, unit_name(snapshot, code, lang)) for code in visible_units(principal, snapshot)]
    return await page(request, principal, "admin_index.html", {"units": units})


ROUTES: list = [
    admin_index,
    *admin_org.ROUTES,
    *admin_fleet.ROUTES,
    *admin_surveys.ROUTES,
    *admin_objectives.ROUTES,
    *admin_import.ROUTES,
]
