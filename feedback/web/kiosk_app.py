"""The tablet app's files at /kiosk/: only the app's own, GET and HEAD alike, /kiosk redirected to /kiosk/."""

from pathlib import Path, PurePath

from litestar import HttpMethod, Request, Router, route
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.file_system import BaseLocalFileSystem
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import StaticFiles
from litestar.types import ASGIApp

import feedback_kiosk

KIOSK_APP_DIR = Path(feedback_kiosk.__file__).parent
# The kinds of file the tablet app is made of (the package data): the folder is also a Python
# package, and its __init__.py or __pycache__ are nobody's business.
KIOSK_FILE_TYPES = frozenset({".html", ".js", ".css", ".webmanifest", ".png", ".svg", ".json"})


def kiosk_app_router() -> Router:
    """The tablet app at /kiosk/: index.html for the folder, the app's own files, GET and HEAD alike.

    /kiosk without the slash is redirected to /kiosk/: served there, the page's relative URLs and the
    service worker's scope would be wrong. Routing drops trailing slashes, so the request's raw path
    tells the two apart.
    """
    cache_control = CacheControlHeader(no_cache=True)  # the service worker may re-validate everything
    files = StaticFiles(
        is_html_mode=True,
        directories=[KIOSK_APP_DIR],
        file_system=BaseLocalFileSystem(),
        headers={cache_control.HEADER_NAME: cache_control.to_header()},
    )

    async def send_file(path: str, head: bool) -> ASGIApp:
        # Built as for GET, so that HEAD carries the same headers (Litestar leaves out the content
        # type of a HEAD file response); then sent without its body.
        response = await files.handle(path=path, is_head_response=False)
        response.is_head_response = head
        return response

    @route("/", http_method=[HttpMethod.GET, HttpMethod.HEAD], name="kiosk_app")
    async def shell(request: Request) -> ASGIApp:
        head = request.method == HttpMethod.HEAD
        raw_path = request.scope.get("raw_path") or b"/"
        if not raw_path.split(b"?", 1)[0].endswith(b"/"):
            query = request.scope.get("query_string", b"").decode("latin-1")
            redirect = Redirect(path="/kiosk/" + (f"?{query}" if query else ""), status_code=308)
            return redirect.to_asgi_response(None, request, is_head_response=head)
        return await send_file("/", head)

    @route("/{file_path:path}", http_method=[HttpMethod.GET, HttpMethod.HEAD], name="kiosk_app/file")
    async def app_file(request: Request, file_path: FromPath[PurePath]) -> ASGIApp:
        if file_path.suffix not in KIOSK_FILE_TYPES:
            raise NotFoundException()
        return await send_file(file_path.as_posix(), request.method == HttpMethod.HEAD)

    return Router(path="/kiosk", route_handlers=[shell, app_file], include_in_schema=False)
