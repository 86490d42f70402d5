"""The workbench's plumbing: templates, the signed-in person, 403s with an audit row, CSRF.

A page is ``async def view(wb, request, viewer) -> web.StreamResponse`` registered with
:meth:`Workbench.page` (GET) or :meth:`Workbench.action` (POST, CSRF-checked); both refuse a
request without a valid session (GET: to the sign-in; POST: 403). See ``bot/workbench/__init__``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from bot.logs import log, new_request_id
from bot.workbench import session as sess
from bot.workbench import texts as T
from services import workbench_scope as scope
from services.workbench_scope import Viewer
from storage.db import Database

logger = logging.getLogger("unioncard.workbench")

HERE = Path(__file__).parent
PREFIX = "/workbench"
TZ = ZoneInfo("Asia/Shanghai")

_key = getattr(web, "RequestKey", None)  # aiohttp >= 3.12; a plain string before
SESSION: Any = _key("wb_session", object) if _key else "wb_session"
FORM: Any = _key("wb_form", object) if _key else "wb_form"

View = Callable[["Workbench", web.Request, Viewer], Awaitable[web.StreamResponse]]


def local(dt: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo("UTC"))
    return dt.astimezone(TZ).strftime(fmt)


class Forbidden(Exception):
    """Raised by a view: answer 403 and write the audit row."""

    def __init__(self, what: str, **detail: Any) -> None:
        super().__init__(what)
        self.what = what
        self.detail = detail


class Workbench:
    def __init__(self, settings: Any, *, db: Database, redis: Any) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.secret = settings.server.secret_key
        self.secure = settings.server.public_url.startswith("https://")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(T=T, local=local, prefix=PREFIX)
        self.routes: list[tuple[str, str, Callable]] = []
        self.nav: list[tuple[str, str, str]] = []  # (key, title, path) of the top menu
        self.cleanup: list[Callable] = []

    # -- registration -------------------------------------------------------------------------

    def page(self, path: str, *, nav: tuple[str, str] | None = None) -> Callable[[View], View]:
        """A GET page at ``/workbench<path>``; ``nav=(key, title)`` adds it to the top menu."""

        def deco(fn: View) -> View:
            self.routes.append(("GET", PREFIX + path, self._guard(fn, post=False)))
            if nav:
                self.nav.append((nav[0], nav[1], PREFIX + path))
            return fn

        return deco

    def action(self, path: str) -> Callable[[View], View]:
        """A POST action at ``/workbench<path>``, refused without the form's CSRF token."""

        def deco(fn: View) -> View:
            self.routes.append(("POST", PREFIX + path, self._guard(fn, post=True)))
            return fn

        return deco

    def add_routes(self, app: web.Application) -> None:
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        app.router.add_get(PREFIX, _to_index)
        app.router.add_static(PREFIX + "/static/", HERE / "static", show_index=False)
        app.on_cleanup.extend(self.cleanup)

    # -- requests -----------------------------------------------------------------------------

    def session_of(self, request: web.Request) -> sess.Session | None:
        return sess.read_cookie(self.secret, request.cookies.get(sess.COOKIE))

    def _guard(self, fn: View, *, post: bool) -> Callable:
        async def handler(request: web.Request) -> web.StreamResponse:
            new_request_id()  # its lines and the outbox rows it queues (cards, notices)
            s = self.session_of(request)
            if s is None:
                if post:
                    log(logger, "workbench.no_session", level=logging.WARNING, path=request.path)
                    return self.message(request, None, T.FORBIDDEN_TITLE, T.CSRF_FAILED, 403)
                # inside the DingTalk client (its user agent says "DingTalk"): its own sign-in
                dd = "DingTalk" in request.headers.get("User-Agent", "")
                login = f"{PREFIX}/{'dingtalk/' if dd else ''}login?next={request.rel_url.path}"
                raise web.HTTPFound(login)
            viewer = await scope.load_viewer(self.db, s.identity)
            request[SESSION] = s
            if not viewer.known:
                await scope.refuse(self.db, s.identity, "not_operator", path=request.path)
                return self.message(request, viewer, T.FORBIDDEN_TITLE, T.NOT_OPERATOR, 403)
            if post:
                form = await request.post()
                request[FORM] = form
                token = form.get("csrf")
                if not sess.csrf_ok(self.secret, s, token if isinstance(token, str) else None):
                    await scope.refuse(self.db, s.identity, "csrf", path=request.path)
                    return self.message(request, viewer, T.FORBIDDEN_TITLE, T.CSRF_FAILED, 403)
            try:
                return await fn(self, request, viewer)
            except Forbidden as exc:
                await scope.refuse(
                    self.db, viewer.identity, exc.what, path=request.path, **exc.detail
                )
                log(logger, "workbench.refused", level=logging.WARNING, what=exc.what)
                return self.message(request, viewer, T.FORBIDDEN_TITLE, T.FORBIDDEN, 403)

        return handler

    def render(
        self,
        request: web.Request,
        viewer: Viewer | None,
        template: str,
        status: int = 200,
        **ctx: Any,
    ) -> web.Response:
        s = request.get(SESSION)
        body = self.env.get_template(template).render(
            viewer=viewer,
            nav=self.nav,
            csrf=sess.csrf_token(self.secret, s) if s else "",
            **ctx,
        )
        resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        return resp

    def message(
        self, request: web.Request, viewer: Viewer | None, title: str, text: str, status: int
    ) -> web.Response:
        return self.render(request, viewer, "message.html", status, title=title, text=text)

    async def allowed_union(self, viewer: Viewer, union_id: int | None) -> int:
        """``union_id`` when the person may see it (else :class:`Forbidden`); their home if None."""
        if union_id is None:
            home = viewer.home
            assert home is not None
            return home
        if not await scope.may_see_union(self.db, viewer, union_id):
            raise Forbidden("union", union_id=union_id)
        return union_id


async def _to_index(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX + "/")


def int_arg(value: Any) -> int | None:
    try:
        n = int(str(value))
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 2**62 else None
