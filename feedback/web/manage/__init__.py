"""The manager web app at /manage/: sign-in, dashboard, action queue, admin, reports.

Each module exports `ROUTES`, the Litestar handlers or routers it serves.
"""

from __future__ import annotations

from feedback.web.manage import actions_pages, admin, auth, dashboard, reports, users

MANAGE_ROUTES: list = [
    *auth.ROUTES,
    *users.ROUTES,
    *dashboard.ROUTES,
    *actions_pages.ROUTES,
    *admin.ROUTES,
    *reports.ROUTES,
]
