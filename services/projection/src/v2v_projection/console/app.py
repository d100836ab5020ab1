"""The web console for programme leads, QA and auditors, on the projection's HTTP port under
/console: server-rendered pages (jinja2), one CSS file and one small script (live alerts,
table filtering); nothing from a CDN.

Every page shows what the same caller reads through the APIs: `Scope.of(caller)` applied by
`ChainQueries` (a chain of another site is 404 and never listed). Login: session.py. Pages
without a valid session redirect to the login (303); the alert stream and the forms answer
401 instead.

Pages: `/console/` chains (filters, search by COI or DIN, paging by COI), `/console/chains/
{coi}` one chain (stage, lineage, custody timeline, shipments with their temperature charts,
releases and e-signatures, alerts with acknowledgement, the integrity of its streams),
`/console/programme` the KPI dashboard, `/console/alerts` the alerts, live by server-sent
events from `/console/alerts/stream`. Acknowledgements: acks.py (who may: `can_acknowledge`).

No printable-report link: the report (`v2v audit report`) is produced from the full history
(a Kafka export), which a running projection does not hold; the chain page prints on paper
itself (print CSS).
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.background import BackgroundTask

from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.auth.revocation_watch import RevocationListUnusable
from v2v_platform.errors import InvalidInput, NotFound
from v2v_platform.http_api import SiteTokenVerifier
from v2v_platform.limits import MAX_TEXT_CHARS
from v2v_platform.scope import Scope
from v2v_projection.adapters.grpc_api import ACCESS
from v2v_projection.alert_watch import AlertHub, Watch
from v2v_projection.chain.builder import FAILED_STAGES, STAGES
from v2v_projection.charts import kpi_charts, temperature_chart
from v2v_projection.console import session
from v2v_projection.console.acks import Ack, AckStore
from v2v_projection.console.listing import (
    MAX_SEARCH_CHARS,
    ConsoleFilter,
    Search,
    alerts_wanted,
    day_end,
    day_start,
)
from v2v_projection.queries import ChainQueries

PREFIX = session.PATH
PAGE_SIZE = 50
HEARTBEAT_S = 15.0
ACK_ROLES = frozenset({Role.COLLECTION, Role.INFUSION, Role.MANUFACTURING, Role.QC})
"""The roles that acknowledge alerts (an auditor reads but does not acknowledge)."""
CONSOLE_ROLES = frozenset(ACCESS["ListChains"].roles)
"""Who may open the console: the roles that read chains through the APIs."""
_PACKAGE = files("v2v_projection.console")
_STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self';"
        " base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium post Origin: null
    "Cache-Control": "no-store",
}


class IntegritySource(Protocol):
    def of(self, scope: Scope, coi: str) -> dict[str, Any]:
        """The chain's integrity, verified now (NotFound like `ChainQueries.chain`)."""
        ...


def can_acknowledge(scope: Scope, view: dict[str, Any]) -> bool:
    """A site related to the chain that holds a role among ACK_ROLES (a site that reads
    every chain as an auditor acknowledges only the chains it is related to itself)."""
    return bool(scope.roles & ACK_ROLES) and scope.relates_to(view["sites"])


def _days(hours: float | None) -> str:
    return "" if hours is None else f"{hours / 24:.1f}"


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.0f} %"


def _range_text(shipment: dict[str, Any]) -> str:
    bounds = shipment.get("range_c")
    if not bounds:
        return "unknown"
    if shipment.get("condition") == "cryo":  # its low bound is absolute zero
        return f"≤ {bounds[1]:g} °C"
    return f"{bounds[0]:g} to {bounds[1]:g} °C"


def _when(text: str | None) -> Markup:
    """An ISO time as `2025-03-01 08:00:00` (UTC, as the column headers say) in a <time>."""
    if not text:
        return Markup("")
    try:
        moment = datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return Markup("<time>{}</time>").format(text)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S")
    return Markup('<time datetime="{}">{}</time>').format(text, shown)


def _short(text: str, size: int = 12) -> str:
    return text if len(text) <= size else text[:size] + "…"


class Console:
    def __init__(
        self,
        queries: ChainQueries,
        hub: AlertHub,
        verifier: SiteTokenVerifier,
        integrity: IntegritySource,
        acks: AckStore,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.queries = queries
        self.hub = hub
        self.verifier = verifier
        self.integrity = integrity
        self.acks = acks
        self.heartbeat_s = heartbeat_s
        self.templates = Environment(
            loader=FileSystemLoader(str(_PACKAGE / "templates")),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(
            days=_days, percent=_percent, short=_short, range_text=_range_text, when=_when
        )
        self.templates.globals.update(base=PREFIX)
        self.static = {name: (_PACKAGE / "static" / name).read_bytes() for name in _STATIC}

    # ------------------------------------------------------------ responses

    def render(
        self, template: str, status: int = 200, caller: CallerIdentity | None = None, **values: Any
    ) -> HTMLResponse:
        html = self.templates.get_template(template).render(caller=caller, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def problem(
        self, status: int, title: str, detail: str, caller: CallerIdentity | None
    ) -> HTMLResponse:
        return self.render("problem.html", status, caller, title=title, detail=detail)

    def to_login(self, request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        if session.COOKIE in request.cookies:
            session.clear_session(request, response)
        return response

    def page(
        self, request: Request, build: Callable[[CallerIdentity, Scope], Response]
    ) -> Response:
        """A page for a logged-in caller (else the login); NotFound is the 404 page."""
        try:
            caller = session.session_caller(self.verifier, request)
        except session.NoSession:
            return self.to_login(request)
        except RevocationListUnusable as error:
            return self.problem(503, "Logins cannot be checked", str(error), None)
        if not caller.roles & CONSOLE_ROLES:
            detail = f"site {caller.site_id} holds no role that reads chains"
            return self.problem(403, "Not for this site", detail, caller)
        try:
            return build(caller, Scope.of(caller))
        except NotFound as error:
            return self.problem(404, "Not found", str(error), caller)
        except InvalidInput as error:
            return self.problem(422, "Invalid input", str(error), caller)

    # ------------------------------------------------------------ login

    def login_page(self, request: Request, message: str = "", status: int = 200) -> Response:
        return self.render("login.html", status, message=message)

    def login(self, request: Request, form: dict[str, str]) -> Response:
        token = form.get("token", "").strip()
        try:
            caller = session.identity(self.verifier, token)
        except session.NoSession as error:
            message = f"This token does not open the console ({error})." if token else ""
            return self.login_page(request, message or "Paste a site token.", 401)
        except RevocationListUnusable as error:
            return self.problem(503, "Logins cannot be checked", str(error), None)
        if not caller.roles & CONSOLE_ROLES:
            message = f"Site {caller.site_id} holds no role that reads chains."
            return self.login_page(request, message, 403)
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        session.set_session(request, response, token)
        return response

    # ------------------------------------------------------------ pages

    def chains_page(self, request: Request, caller: CallerIdentity, scope: Scope) -> Response:
        params = request.query_params
        search_text = params.get("q", "").strip()[:MAX_SEARCH_CHARS]
        wanted = ConsoleFilter(
            stage=params.get("stage", ""),
            site_id=params.get("site", ""),
            has_alerts=alerts_wanted(params.get("alerts", "")),
            updated_since=day_start(params.get("from", ""), "updated from"),
            updated_before=day_end(params.get("to", ""), "updated to"),
            search=Search(search_text),
        )
        after = params.get("after", "")
        page = self.queries.list_chains(scope, wanted, PAGE_SIZE, after)
        readable = self.queries.readable(scope)
        matching = sum(1 for view in readable if wanted.accepts(view))
        shown_before = sum(1 for view in readable if view["coi"] <= after and wanted.accepts(view))
        filters = {
            "q": search_text,
            "stage": wanted.stage,
            "site": wanted.site_id,
            "alerts": params.get("alerts", ""),
            "from": params.get("from", ""),
            "to": params.get("to", ""),
        }
        kept = {name: value for name, value in filters.items() if value}
        return self.render(
            "chains.html",
            caller=caller,
            active="chains",
            chains=page.chains,
            filters=filters,
            stages=[*STAGES, *FAILED_STAGES],
            sites=sorted({site for view in readable for site in view["sites"]}),
            total=len(readable),
            matching=matching,
            first=shown_before + 1 if page.chains else 0,
            last=shown_before + len(page.chains),
            next_url=f"?{urlencode({**kept, 'after': page.next_after})}" if page.next_after else "",
            first_url=f"?{urlencode(kept)}" if after else "",
            search_din=wanted.search.din or "",
        )

    def chain_page(self, coi: str, caller: CallerIdentity, scope: Scope) -> Response:
        view = self.queries.chain(scope, coi)
        try:
            integrity: dict[str, Any] | None = self.integrity.of(scope, view["coi"])
            integrity_error = ""
        except NotFound:
            raise
        except Exception as error:  # noqa: BLE001 - shown on the page; the chain still reads
            integrity, integrity_error = None, f"{type(error).__name__}: {error}"
        acks = self.acks.of_chains([view["coi"]])
        custody = sorted(
            (
                {"din": unit["din"], "kind": unit["kind"], **interval}
                for unit in view["units"]
                for interval in unit["custody"]
            ),
            key=lambda row: (row["from"], row["to"] or "~", row["din"]),
        )
        shipments = [
            {**shipment, "chart": Markup(temperature_chart(shipment))}
            for shipment in view.get("shipments", [])
        ]
        return self.render(
            "chain.html",
            caller=caller,
            active="chains",
            chain=view,
            custody=custody,
            shipments=shipments,
            alerts=self._alerts_with_acks(view["coi"], view["alerts"], acks),
            may_acknowledge=can_acknowledge(scope, view),
            integrity=integrity,
            integrity_error=integrity_error,
        )

    def programme_page(self, caller: CallerIdentity, scope: Scope) -> Response:
        kpis = self.queries.kpis(scope)
        charts = kpi_charts(kpis, self.queries.readable(scope))
        return self.render(
            "programme.html",
            caller=caller,
            active="programme",
            kpis=kpis,
            charts={name: Markup(svg) for name, svg in charts.items()},
            stages=list(kpis["consortium"]["stage_hours"]),
        )

    def alerts_page(self, caller: CallerIdentity, scope: Scope) -> Response:
        alerts = list(reversed(self.queries.alerts(scope)))
        acks = self.acks.of_chains({alert["coi"] for alert in alerts})
        readable = {view["coi"]: view for view in self.queries.readable(scope)}
        shown = [
            {
                **alert,
                "ack": acks.get((alert["coi"], alert["kind"], alert["at"], alert["event_id"])),
                "may_acknowledge": alert["coi"] in readable
                and can_acknowledge(scope, readable[alert["coi"]]),
            }
            for alert in alerts
        ]
        return self.render(
            "alerts.html",
            caller=caller,
            active="alerts",
            alerts=shown,
            may_acknowledge=bool(scope.roles & ACK_ROLES),
        )

    @staticmethod
    def _alerts_with_acks(
        coi: str, alerts: list[dict[str, Any]], acks: dict[tuple[str, str, str, str], Ack]
    ) -> list[dict[str, Any]]:
        newest_first = sorted(alerts, key=lambda a: (a["at"], a["event_id"]), reverse=True)
        return [
            {
                **alert,
                "coi": coi,
                "ack": acks.get((coi, alert["kind"], alert["at"], alert["event_id"])),
            }
            for alert in newest_first
        ]

    # ------------------------------------------------------------ acknowledgement

    def acknowledge(self, request: Request, form: dict[str, str]) -> Response:
        try:
            caller = session.session_caller(self.verifier, request)
        except session.NoSession as error:
            return self.problem(401, "Log in first", str(error), None)
        except RevocationListUnusable as error:
            return self.problem(503, "Logins cannot be checked", str(error), None)
        scope = Scope.of(caller)
        coi = form.get("coi", "").strip()
        try:
            view = self.queries.chain(scope, coi)
        except NotFound as error:
            return self.problem(404, "Not found", str(error), caller)
        if not can_acknowledge(scope, view):
            needed = ", ".join(sorted(role.value for role in ACK_ROLES))
            detail = (
                f"site {caller.site_id} may not acknowledge alerts of chain {coi}: that needs"
                f" a site related to the chain with a role among {needed}"
            )
            return self.problem(403, "Not allowed to acknowledge", detail, caller)
        ref = (form.get("kind", ""), form.get("at", ""), form.get("event_id", ""))
        if not any((a["kind"], a["at"], a["event_id"]) == ref for a in view["alerts"]):
            detail = f"chain {coi} has no {ref[0] or 'such'} alert at {ref[1] or '?'}"
            return self.problem(404, "No such alert", detail, caller)
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        note = form.get("note", "").strip()[:MAX_TEXT_CHARS]
        self.acks.acknowledge(Ack(view["coi"], *ref, caller.site_id, now, note))
        back = form.get("next", "")
        if not back.startswith(f"{PREFIX}/") or "//" in back or "\\" in back:
            back = f"{PREFIX}/alerts"
        return RedirectResponse(back, status_code=303)

    # ------------------------------------------------------------ live alerts

    def stream(self, request: Request) -> Response:
        try:
            caller = session.session_caller(self.verifier, request)
        except session.NoSession as error:
            return self.problem(401, "Log in first", str(error), None)
        except RevocationListUnusable as error:
            return self.problem(503, "Logins cannot be checked", str(error), None)
        scope = Scope.of(caller)
        watch = self.hub.watch(Watch(scope), include_existing=False)
        may_acknowledge = bool(scope.roles & ACK_ROLES)
        return StreamingResponse(
            self._events(watch, may_acknowledge),
            media_type="text/event-stream",
            headers={**HEADERS, "X-Accel-Buffering": "no"},
            background=BackgroundTask(self.hub.forget, watch),
        )

    async def _events(self, watch: Watch, may_acknowledge: bool) -> AsyncIterator[str]:
        """`alert` events as the hub raises them, a heartbeat comment every heartbeat_s;
        the watch ends when the client goes away (the response is cancelled) or the hub
        closes."""
        try:
            yield "retry: 2000\n: watching\n\n"
            beat = time.monotonic()
            while True:
                try:
                    item = watch.inbox.get_nowait()
                except queue.Empty:
                    if time.monotonic() - beat >= self.heartbeat_s:
                        beat = time.monotonic()
                        yield ": heartbeat\n\n"
                    await asyncio.sleep(0.1)
                    continue
                if not isinstance(item, dict):
                    return  # the hub closed
                alert = {**item, "may_acknowledge": may_acknowledge}
                yield f"event: alert\ndata: {json.dumps(alert, sort_keys=True)}\n\n"
        finally:
            self.hub.forget(watch)

    def static_file(self, name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            self.static[name],
            media_type=_STATIC[name],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )


def console_router(
    queries: ChainQueries,
    hub: AlertHub,
    verifier: SiteTokenVerifier,
    integrity: IntegritySource,
    acks: AckStore,
    *,
    heartbeat_s: float = HEARTBEAT_S,
) -> APIRouter:
    """The console's routes (prefix /console; not part of the OpenAPI document: the API is
    /v1, the console is its pages)."""
    console = Console(queries, hub, verifier, integrity, acks, heartbeat_s)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def foreign_origin(request: Request) -> Response | None:
        """403 for a POST whose Origin names another origin (None: same origin)."""
        try:
            session.check_origin(request)
        except session.ForeignOrigin as error:
            return console.problem(403, "Refused", str(error), None)
        return None

    async def posted_form(
        request: Request, handle: Callable[[Request, dict[str, str]], Response]
    ) -> Response:
        """`handle(request, form)` off the event loop, for a same-origin POST."""
        if (refused := foreign_origin(request)) is not None:
            return refused
        form = await session.form_of(request)
        return await run_in_threadpool(handle, request, form)

    @router.get("/login")
    def login_page(request: Request) -> Response:
        return console.login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        return await posted_form(request, console.login)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        if (refused := foreign_origin(request)) is not None:
            return refused
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        session.clear_session(request, response)
        return response

    @router.get("/")
    def chains(request: Request) -> Response:
        return console.page(request, lambda c, s: console.chains_page(request, c, s))

    @router.get("/chains/{coi}")
    def chain(request: Request, coi: str) -> Response:
        return console.page(request, lambda c, s: console.chain_page(coi, c, s))

    @router.get("/programme")
    def programme(request: Request) -> Response:
        return console.page(request, console.programme_page)

    @router.get("/alerts")
    def alerts(request: Request) -> Response:
        return console.page(request, console.alerts_page)

    @router.get("/alerts/stream")
    def alert_stream(request: Request) -> Response:
        return console.stream(request)

    @router.post("/alerts/ack")
    async def acknowledge(request: Request) -> Response:
        return await posted_form(request, console.acknowledge)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        return console.static_file(name)

    return router
