"""The campaigns page: template campaigns for people with the `marketing` (or `admin`)
role, served with the desk at `/webhooks/desk/campaigns/`, its JSON at
`/webhooks/desk/api/campaigns...`.

The same operations as `python -m shop campaign ...` (shop.campaigns, shop.audiences,
shop.campaign_stats), as JSON:

    GET  api/campaigns                      every campaign with its state and counters
    GET  api/campaigns/templates            the approved templates to choose from
    POST api/campaigns/preview              {template, params, labels, ...}: audience size,
                                            excluded per reason, 5 samples, estimated cost
    POST api/campaigns                      the same body and a name: a new draft
    POST api/campaigns/start|pause|resume|cancel   {name}
    GET  api/campaigns/progress?name=...    rows per state (the page polls it every second)
    GET  api/campaigns/stats?name=...       statistics, series and the chart (SVG)

The sending itself is the sender's (marketing/sender.py, a process of its own): `start`
queues one row per recipient and returns at once. Database work runs on the shop
database's threads, never on the server's event loop.
"""
import asyncio
import json
import os
import threading
import time
from decimal import Decimal
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from shop import audiences, campaign_stats, campaigns, ratecard, templates
from shop.db import Database
from web import auth, chart, layout, static_files
from web.http import HttpError, body, no_store

PAGE = static_files.ROOT / "campaigns"
ACTIONS = ("start", "pause", "resume", "cancel")
NAME_MAX = 128


class _Hooks:
    """shop.campaigns.shop_hooks, loaded once (templates.yml) on a database thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: Optional[Dict[str, Any]] = None
        self._templates: List[templates.Template] = []

    @property
    def default_language(self) -> str:
        return os.environ.get("SHOP_DEFAULT_LANGUAGE") or "en"

    def get(self) -> Dict[str, Any]:
        with self._lock:
            if self._hooks is None:
                self._templates = templates.load()
                self._hooks = campaigns.shop_hooks(self.default_language)
            return self._hooks

    def templates(self) -> List[templates.Template]:
        self.get()
        return self._templates


def _labels(value: Any, field: str) -> List[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return [x.strip() for x in value if x.strip()]
    raise HttpError(400, f"{field} must be a list of labels or a comma-separated text")


def audience_of(data: Dict[str, Any]) -> audiences.AudienceSpec:
    """The audience a form describes; 400 naming the field otherwise."""
    days = data.get("wrote_within_days")
    if days in (None, ""):
        days = None
    elif isinstance(days, str) and days.strip().isdigit():
        days = int(days.strip())
    try:
        return audiences.AudienceSpec(labels=tuple(_labels(data.get("labels"), "labels")),
                                      match_all=bool(data.get("match_all", False)),
                                      exclude_labels=tuple(_labels(data.get("exclude_labels"), "exclude_labels")),
                                      wrote_within_days=days)
    except ValueError as problem:
        raise HttpError(400, str(problem)) from None


def _params(data: Dict[str, Any]) -> Dict[str, str]:
    params = data.get("params") or {}
    try:
        return campaigns.check_params(params)
    except campaigns.CampaignError as problem:
        raise HttpError(400, str(problem)) from None


def _template(conn: Any, hooks: _Hooks, name: Any) -> str:
    """The category of an approved template (400 for anything else)."""
    if not isinstance(name, str) or not name:
        raise HttpError(400, "choose a template")
    category = hooks.get()["category_of"](conn, name)
    if category is None:
        raise HttpError(400, f"template {name!r} is not approved in the shop's default language")
    return str(category)


def _check(conn: Any, hooks: _Hooks, template: str, params: Dict[str, str]) -> None:
    try:
        hooks.get()["check"](conn, template, params)
    except ValueError as problem:
        raise HttpError(400, str(problem)) from None


def approved_templates(conn: Any, hooks: _Hooks) -> List[Dict[str, Any]]:
    """Templates Meta approved in the shop's default language, as the form shows them."""
    found, seen = [], set()
    default = hooks.default_language
    for variant in hooks.templates():
        if variant.name in seen:
            continue
        seen.add(variant.name)
        chosen = templates.pick(conn, hooks.templates(), variant.name, default, default)
        if chosen is None:
            continue
        found.append({
            "name": chosen.name, "language": chosen.language, "category": chosen.category,
            "body": chosen.render(), "body_parameters": chosen.body_parameters, "examples": list(chosen.body_examples),
            "buttons": [b.text for b in chosen.buttons],
        })
    return found


def preview(conn: Any, hooks: _Hooks, data: Dict[str, Any], now: float) -> Dict[str, Any]:
    category = _template(conn, hooks, data.get("template"))
    params = _params(data)
    _check(conn, hooks, str(data["template"]), params)
    shown = audiences.preview(conn, audience_of(data), category, now, ratecard.load())
    return {
        "size": shown.size, "excluded": shown.excluded, "category": category,
        "sample": [{"name": s.name, "masked": s.masked} for s in shown.sample],
        "estimated_cost": {currency: str(cost.quantize(Decimal("0.01"))) for currency, cost in shown.estimated_cost.items()},
        "per_country": shown.per_country,
    }


def create(conn: Any, hooks: _Hooks, data: Dict[str, Any], now: float) -> Dict[str, Any]:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        raise HttpError(400, f"give the campaign a name (1-{NAME_MAX} characters)")
    category = _template(conn, hooks, data.get("template"))
    params = _params(data)
    _check(conn, hooks, str(data["template"]), params)
    spec = audience_of(data)
    try:
        made = campaigns.create(conn, name, str(data["template"]), category, params, json.loads(spec.to_json()), None, now)
    except campaigns.CampaignError as problem:
        raise HttpError(409 if "exists already" in str(problem) else 400, str(problem)) from None
    return {"name": made.name, "state": made.state, "template": made.template, "category": made.category}


def act(conn: Any, hooks: _Hooks, action: str, name: Any, now: float) -> Dict[str, Any]:
    if not isinstance(name, str) or campaigns.get(conn, name) is None:
        raise HttpError(404, f"no campaign named {name!r}")
    try:
        if action == "start":
            done = campaigns.start(conn, name, now, hooks.get()["select"], hooks.get()["pick"])
        elif action == "pause":
            done = campaigns.pause(conn, name)
        elif action == "resume":
            done = campaigns.resume(conn, name)
        else:
            done = campaigns.cancel(conn, name, now)
    except campaigns.CampaignError as problem:
        raise HttpError(409, str(problem)) from None
    return {"name": done.name, "state": done.state, "reason": done.reason, "recipients": done.recipients,
            "excluded": done.excluded}


def progress(conn: Any, name: str) -> Dict[str, Any]:
    if campaigns.get(conn, name) is None:
        raise HttpError(404, f"no campaign named {name!r}")
    found = campaigns.progress(conn, name)
    c = found.campaign
    return {"name": c.name, "state": c.state, "reason": c.reason, "template": c.template, "category": c.category,
            "total": found.total, "finished": found.finished, "states": found.states, "statuses": found.statuses,
            "recipients": c.recipients, "excluded": c.excluded, "started_at": c.started_at, "finished_at": c.finished_at}


def stats(conn: Any, name: str, now: float) -> Dict[str, Any]:
    try:
        counted = campaign_stats.campaign(conn, name)
    except campaign_stats.StatsError as problem:
        raise HttpError(404, str(problem)) from None
    points = campaign_stats.series(conn, name, now)
    return {"stats": counted.as_dict(), "series": [p.__dict__ for p in points], "chart_svg": chart.svg(points)}


class _StatsCache:
    """The statistics of a big campaign take a while (about 0.8 s for 100,000 recipients
    on SQLite): they are computed on a thread of their own, not on the shop database's
    threads the channel's work waits for, at most once per STATS_TTL seconds per
    campaign however many pages poll them."""

    STATS_TTL = 4.0

    def __init__(self) -> None:
        self._found: Dict[str, Tuple[float, Dict[str, Any]]] = {}
        self._running: Dict[str, "asyncio.Future[Dict[str, Any]]"] = {}

    async def get(self, db: Database, name: str) -> Dict[str, Any]:
        now = time.monotonic()
        found = self._found.get(name)
        if found is not None and now - found[0] < self.STATS_TTL:
            return found[1]
        if name not in self._running:
            loop = asyncio.get_running_loop()
            self._running[name] = loop.run_in_executor(None, partial(db.reading, stats, name, time.time()))
        future = self._running[name]
        try:
            result = await asyncio.shield(future)
        finally:
            if self._running.get(name) is future and future.done():
                del self._running[name]
        self._found[name] = (time.monotonic(), result)
        if len(self._found) > 64:  # campaigns nobody looks at any more
            for stale in sorted(self._found, key=lambda n: self._found[n][0])[:32]:
                del self._found[stale]
        return result


def _name(request: Request) -> str:
    name = request.args.get("name")
    if not name:
        raise HttpError(400, "which campaign? ?name=...")
    return str(name)


def add_routes(bp: Blueprint, database: Callable[[Request], Database]) -> None:
    """The page and its API on the desk's blueprint (or any blueprint: the tests serve
    it without Rasa). `database` finds the shop database of a request."""
    hooks = _Hooks()
    marketing = auth.guard(auth.MARKETING, database)

    @bp.get("/campaigns")
    async def campaigns_page(request: Request) -> HTTPResponse:
        if not request.path.endswith("/"):  # the page's links are relative to .../campaigns/
            return response.redirect(request.path + "/")
        return response.html(layout.render(PAGE / "body.html", "Campaigns", "campaigns", "../", ("static/style.css",),
                                           ("static/app.js",)), headers={"Cache-Control": "no-cache"})

    @bp.get("/campaigns/static/<name:path>")
    async def campaigns_static(_: Request, name: str) -> HTTPResponse:
        return await static_files.serve((PAGE, static_files.COMMON), name)

    @bp.get("/api/campaigns")
    @marketing
    async def list_campaigns(request: Request, user: auth.User) -> HTTPResponse:
        found = await database(request).read(campaign_stats.overview)
        return no_store({"campaigns": [o.as_dict() for o in found], "user": {"name": user.name, "role": user.role}})

    @bp.get("/api/campaigns/templates")
    @marketing
    async def list_templates(request: Request, user: auth.User) -> HTTPResponse:
        found = await database(request).read(approved_templates, hooks)
        return no_store({"templates": found, "default_language": hooks.default_language})

    @bp.post("/api/campaigns/preview")
    @marketing
    async def preview_audience(request: Request, user: auth.User) -> HTTPResponse:
        return no_store(await database(request).read(preview, hooks, body(request), time.time()))

    @bp.post("/api/campaigns")
    @marketing
    async def create_campaign(request: Request, user: auth.User) -> HTTPResponse:
        return no_store(await database(request).run(create, hooks, body(request), time.time()), status=201)

    @bp.post("/api/campaigns/<action:str>")
    @marketing
    async def change(request: Request, user: auth.User, action: str) -> HTTPResponse:
        if action not in ACTIONS:
            raise HttpError(404, f"no action {action!r} (one of {', '.join(ACTIONS)})")
        return no_store(await database(request).run(act, hooks, action, body(request).get("name"), time.time()))

    @bp.get("/api/campaigns/progress")
    @marketing
    async def show_progress(request: Request, user: auth.User) -> HTTPResponse:
        return no_store(await database(request).read(progress, _name(request)))

    cache = _StatsCache()

    @bp.get("/api/campaigns/stats")
    @marketing
    async def show_stats(request: Request, user: auth.User) -> HTTPResponse:
        return no_store(await cache.get(database(request), _name(request)))
