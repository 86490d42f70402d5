"""The workbench (工作台, issue 13 point 2): server-rendered pages under ``/workbench/`` for
superior unions (their subtree) and contacts (their own unit), signed in by the platform.

Mounted by :func:`add_workbench` (one line in ``bot/app.py``). Adding a page: write a module
``bot/workbench/<name>_page.py`` with ``add_routes(wb)`` that decorates its views with
``@wb.page("/path", nav=("key", "标题"))`` (GET; ``nav`` puts it in the top menu) or
``@wb.action("/path")`` (POST, CSRF-checked; the form is ``request[core.FORM]``), a template
``templates/<name>.html`` extending ``base.html`` (forms include ``{{ csrf_field() }}``), and add
the module to ``PAGES`` below. Raise :class:`bot.workbench.core.Forbidden` for anything outside
the person's scope (403 + audit row); use ``wb.allowed_union`` to check a union id.
"""

from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web

from bot.workbench.core import Workbench
from storage.db import Database

PAGES = (
    "auth",
    "dingtalk_auth",
    "overview_page",
    "pending_page",
    "review_page",
    "units_page",
    "tree_create_page",
    "tree_dups_page",
    "tree_split_page",
    "tree_move_page",
)
WORKBENCH_KEY = web.AppKey("workbench", Workbench)


def add_workbench(app: web.Application, settings: Any, *, db: Database, redis: Any) -> Workbench:
    wb = Workbench(settings, db=db, redis=redis)
    for name in PAGES:
        importlib.import_module(f"bot.workbench.{name}").add_routes(wb)
    wb.add_routes(app)
    app[WORKBENCH_KEY] = wb
    return wb
