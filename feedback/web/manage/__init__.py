"""The manager web app at /manage/: sign-in, dashboard, action queue, admin, reports.

Each module exports `ROUTES`, the Litestar handlers or routers it serves.
"""

from feedback.web.manage import (
    account,
    actions_pages,
    admin,
    audit_page,
    auth,
    dashboard,
    entry_pages,
    erasure_pages,
    oidc,
    reports,
    scan_pages,
    users,
)

MANAGE_ROUTES: list = [
    *auth.ROUTES,
    *account.ROUTES,
    *oidc.ROUTES,
    *users.ROUTES,
    *dashboard.ROUTES,
    *erasure_pages.ROUTES,
    *actions_pages.ROUTES,
    *admin.ROUTES,
    *reports.ROUTES,
    *audit_page.ROUTES,
    *entry_pages.ROUTES,
    *scan_pages.ROUTES,
]
