"""The console's pages. Every handler reads and writes through the /v1 API (see api.py) with
the key of the signed-in user; what the API refuses is shown as the API said it, next to the
field it names."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.common import ladder as ladders

from .api import Api, ApiProblem
from .forms import TARGET_ROWS, Form, FormRejected, receiving_number_body, receiving_number_values
from .session import COOKIE, Session, SessionCodec, SignInLimiter, new_session

HERE = Path(__file__).parent
env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
env.filters["short"] = ladders.short
env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)

router = APIRouter(include_in_schema=False)

# No inline script or style, no framing, nothing cached: pages carry account data.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Messages a redirect names by code (never text from the query string).
ERRORS = {
    "rn-in-use": "This receiving number still has tracking numbers pointing at it: point them elsewhere or "
                 "remove them first.",
    "tn-refused": "That change was refused: the receiving number is not in this account.",
}
DONE = {
    "rn-saved": "Receiving number saved.",
    "rn-deleted": "Receiving number removed.",
    "tn-added": "Tracking number added.",
    "tn-saved": "Tracking number saved.",
    "tn-deleted": "Tracking number removed.",
    "wh-added": "Webhook added.",
    "wh-deleted": "Webhook removed.",
    "redelivered": "Delivery queued again.",
    "account": "Account selected.",
}
WEBHOOK_EVENTS = ("initiated", "ringing", "answered", "completed", "dtmf", "transferred")
CALL_RESULTS = ("completed", "busy", "no-answer", "failed", "canceled", "lost")
ALLOWLIST_FILES = {"json": "switchboard-allowlist.json", "csv": "switchboard-allowlist.csv",
                   "nftables": "switchboard-allowlist.nft", "iptables": "switchboard-allowlist.iptables"}


class Console:
    """Per-app state: the session codec and the sign-in limiter."""

    def __init__(self, codec: SessionCodec, limiter: SignInLimiter, ttl: float) -> None:
        self.codec, self.limiter, self.ttl = codec, limiter, ttl


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


class Refused(Exception):
    """A post the console will not act on (no or wrong CSRF token)."""


def state(request: Request) -> Console:
    st: Console | None = getattr(request.app.state, "console", None)
    if st is None:  # made on first use: create_app(None) (the OpenAPI document alone) has no context
        ctx = request.app.state.ctx
        s = ctx.settings
        st = request.app.state.console = Console(
            SessionCodec(ctx.secrets), SignInLimiter(s.console_signin_attempts, s.console_signin_window),
            s.console_session_ttl)
    return st


def current(request: Request) -> Session | None:
    return state(request).codec.load(request.cookies.get(COOKIE))


def secure(resp: Response) -> Response:
    resp.headers.update(HEADERS)
    return resp


def set_cookie(request: Request, resp: Response, s: Session | None) -> None:
    if s is None:
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return
    resp.set_cookie(COOKIE, state(request).codec.dump(s), max_age=max(1, int(s.expires - time.time())), path="/",
                    httponly=True, samesite="strict", secure=request.url.scheme == "https")


def redirect(url: str) -> Response:
    return secure(RedirectResponse(url, status_code=303))


def render(request: Request, s: Session | None, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    done = DONE.get(request.query_params.get("done", ""))
    flash_error = ERRORS.get(request.query_params.get("error", ""))
    html = env.get_template(template).render(s=s, csrf=s.csrf if s else "", path=request.url.path, done=done,
                                             flash_error=flash_error, **ctx)
    return secure(HTMLResponse(html, status_code=status))  # type: ignore[return-value]


def signed_in(request: Request, *, account: bool = True) -> Session:
    """The session of a signed-in user; an admin must have picked an account for account pages."""
    s = current(request)
    if s is None or not s.signed_in:
        raise Redirect("/")
    if account and s.account_id is None:
        raise Redirect("/accounts")
    return s


async def posted(request: Request, *, account: bool = True) -> tuple[Session, Form]:
    """A signed-in user's form post with its CSRF token checked."""
    form = Form(await request.body())
    s = current(request)
    if s is None or not s.check_csrf(form.get("csrf")):
        raise Refused()
    if not s.signed_in:
        raise Redirect("/")
    if account and s.account_id is None:
        raise Redirect("/accounts")
    return s, form


_SEGMENT = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def seg(value: str) -> str:
    """An id as one path segment of an API URL; anything else is not an object of ours."""
    if not _SEGMENT.fullmatch(value):
        raise ApiProblem(404, "not found")
    return value


def api(request: Request, s: Session) -> Api:
    assert s.key is not None
    return Api(request.app, s.key)


def scoped(s: Session) -> dict[str, Any]:
    """List filters: the admin sees the account it picked; an account key only ever its own."""
    return {"account_id": s.account_id} if s.admin else {}


def owned(s: Session, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "account_id": s.account_id} if s.admin else body


def mount(app: FastAPI) -> None:
    app.mount("/static/console", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)

    @app.exception_handler(Redirect)
    async def _redirect(request: Request, exc: Redirect) -> Response:
        return redirect(exc.url)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return render(request, current(request), "error.html", 403, title="Form refused",
                      detail="The form was sent without a valid security (CSRF) token, so nothing was changed. "
                             "Go back, reload the page and try again.")

    @app.exception_handler(FormRejected)
    async def _rejected(request: Request, exc: FormRejected) -> Response:
        return render(request, current(request), "error.html", 413, title="Form refused", detail=f"{exc}.")

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> Response:
        s = current(request)
        if exc.status == 401:  # the key was deleted since sign-in
            resp = redirect("/?expired=1")
            set_cookie(request, resp, None)
            return resp
        titles = {403: "Not allowed", 404: "Not found", 503: "Unavailable"}
        return render(request, s, "error.html", exc.status, title=titles.get(exc.status, "Error"),
                      detail=exc.detail)


# --- sign in / out ----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    s = current(request)
    if s is not None and s.signed_in:
        return redirect("/numbers" if s.account_id else "/accounts")
    return _signin_page(request, s)


def _signin_page(request: Request, s: Session | None, status: int = 200, error: str = "") -> Response:
    if s is None or s.signed_in:
        s = new_session(state(request).ttl)
    note = ""
    if request.query_params.get("signed_out"):
        note = "You are signed out."
    elif request.query_params.get("expired"):
        note = "Your session ended: the key is no longer valid. Sign in again."
    resp = render(request, s, "signin.html", status, error=error, note=note)
    set_cookie(request, resp, s)
    return resp


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = Form(await request.body())
    s = current(request)
    if s is None or not s.check_csrf(form.get("csrf")):
        raise Refused()
    st = state(request)
    addr = request.client.host if request.client else "unknown"
    if wait := st.limiter.retry_after(addr):
        resp = _signin_page(request, s, 429, f"Too many failed sign-in attempts from your address. "
                                             f"Try again in {wait} seconds.")
        resp.headers["Retry-After"] = str(wait)
        return resp
    key = form.get("api_key").strip()
    if not key:
        return _signin_page(request, s, 422, "Enter your API key.")
    async with Api(request.app, key) as a:
        r = await a.raw("GET", "/v1/accounts", params={"limit": 1})
        if r.status_code == 401:
            st.limiter.failed(addr)
            return _signin_page(request, s, 401, "That API key is not valid. Check that you copied all of it "
                                                 "(it starts with sb_) and try again.")
        if r.status_code >= 400:
            return _signin_page(request, s, 503, f"Cannot sign in now: {ApiProblem.of(r).detail}")
        items = r.json().get("items", [])
        # Admin-only routes answer 404 to an account key before doing anything: that tells the two apart.
        admin = (await a.raw("GET", "/v1/trunks")).status_code != 404
    # A new session (new id and CSRF token) at sign-in: a pre-sign-in cookie cannot be fixed on a victim.
    fresh = new_session(st.ttl)
    fresh.key, fresh.admin = key, admin
    if not admin and items:
        fresh.account_id, fresh.account_name = items[0]["id"], items[0]["name"]
    resp = redirect("/accounts" if admin else "/numbers")
    set_cookie(request, resp, fresh)
    return resp


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = Form(await request.body())
    s = current(request)
    if s is None or not s.check_csrf(form.get("csrf")):
        raise Refused()
    state(request).codec.end(s)
    resp = redirect("/?signed_out=1")
    set_cookie(request, resp, None)
    return resp


# --- accounts (admin) ------------------------------------------------------------------


@router.get("/accounts", response_class=HTMLResponse)
async def accounts(request: Request, cursor: str = "") -> Response:
    s = signed_in(request, account=False)
    if not s.admin:
        return redirect("/numbers")
    async with api(request, s) as a:
        page = await a.get("/v1/accounts", limit=50, cursor=cursor)
    return render(request, s, "accounts.html", page=page, errors={}, values={})


@router.post("/accounts/select")
async def select_account(request: Request) -> Response:
    s, form = await posted(request, account=False)
    if not s.admin:
        return redirect("/numbers")
    async with api(request, s) as a:
        acc = await a.get(f"/v1/accounts/{seg(form.get('account_id'))}")
    s.account_id, s.account_name = acc["id"], acc["name"]
    resp = redirect("/numbers?done=account")
    set_cookie(request, resp, s)
    return resp


@router.post("/accounts/new")
async def new_account(request: Request) -> Response:
    s, form = await posted(request, account=False)
    async with api(request, s) as a:
        try:
            acc = await a.post("/v1/accounts", {"name": form.get("name")})
        except ApiProblem as p:
            if p.status >= 500:
                raise
            page = await a.get("/v1/accounts", limit=50)
            return render(request, s, "accounts.html", 422, page=page, errors=p.by_field(), problem=p,
                          values={"name": form.get("name")})
    s.account_id, s.account_name = acc["id"], acc["name"]
    resp = redirect("/numbers?done=account")
    set_cookie(request, resp, s)
    return resp


# --- numbers ---------------------------------------------------------------------------


@router.get("/numbers", response_class=HTMLResponse)
async def numbers(request: Request) -> Response:
    return render(request, signed_in(request), "numbers.html")


@router.get("/numbers/receiving", response_class=HTMLResponse)
async def receiving_list(request: Request, cursor: str = "") -> Response:
    s = signed_in(request)
    async with api(request, s) as a:
        page = await a.get("/v1/receiving-numbers", limit=50, cursor=cursor, **scoped(s))
        tracking = await a.get("/v1/tracking-numbers", limit=200, **scoped(s))
    by_rn: dict[str, list[str]] = {}
    for t in tracking["items"]:
        by_rn.setdefault(t["receiving_number_id"], []).append(t["number"])
    return render(request, s, "receiving_list.html", page=page, by_rn=by_rn, cursor=cursor)


def _rn_form(request: Request, s: Session, *, rn: dict[str, Any] | None, values: dict[str, Any],
             problem: ApiProblem | None = None, status: int = 200) -> Response:
    regions = request.app.state.ctx.settings.regions
    return render(request, s, "receiving_form.html", status, rn=rn, v=values, rows=TARGET_ROWS, regions=regions,
                  errors=problem.by_field() if problem else {}, problem=problem)


@router.get("/numbers/receiving/new", response_class=HTMLResponse)
async def receiving_new(request: Request) -> Response:
    s = signed_in(request)
    return _rn_form(request, s, rn=None, values=receiving_number_values(None))


@router.post("/numbers/receiving/new")
async def receiving_create(request: Request) -> Response:
    s, form = await posted(request)
    async with api(request, s) as a:
        try:
            rn = await a.post("/v1/receiving-numbers", owned(s, receiving_number_body(form, edit=False)))
        except ApiProblem as p:
            if p.status >= 500 or p.status == 401:
                raise
            return _rn_form(request, s, rn=None, values=receiving_number_values(None, form), problem=p,
                            status=p.status)
    # Save & Continue: the next step is a tracking number that rings it.
    return redirect("/numbers/tracking/new?" + urlencode({"receiving_number_id": rn["id"], "created": "1"}))


@router.get("/numbers/receiving/{rn_id}", response_class=HTMLResponse)
async def receiving_edit(request: Request, rn_id: str) -> Response:
    s = signed_in(request)
    async with api(request, s) as a:
        rn = await a.get(f"/v1/receiving-numbers/{seg(rn_id)}")
    return _rn_form(request, s, rn=rn, values=receiving_number_values(rn))


@router.post("/numbers/receiving/{rn_id}")
async def receiving_update(request: Request, rn_id: str) -> Response:
    s, form = await posted(request)
    async with api(request, s) as a:
        rn = await a.get(f"/v1/receiving-numbers/{seg(rn_id)}")
        try:
            await a.patch(f"/v1/receiving-numbers/{seg(rn_id)}", receiving_number_body(form, edit=True))
        except ApiProblem as p:
            if p.status >= 500 or p.status in (401, 404):
                raise
            return _rn_form(request, s, rn=rn, values=receiving_number_values(rn, form), problem=p,
                            status=p.status)
    return redirect("/numbers/receiving?done=rn-saved")


@router.post("/numbers/receiving/{rn_id}/delete")
async def receiving_delete(request: Request, rn_id: str) -> Response:
    s, _ = await posted(request)
    async with api(request, s) as a:
        try:
            await a.delete(f"/v1/receiving-numbers/{seg(rn_id)}")
        except ApiProblem as p:
            if p.status != 409:
                raise
            return redirect("/numbers/receiving?error=rn-in-use")
    return redirect("/numbers/receiving?done=rn-deleted")


async def _receiving_options(a: Api, s: Session) -> list[dict[str, Any]]:
    page = await a.get("/v1/receiving-numbers", limit=200, **scoped(s))
    return list(page["items"])


@router.get("/numbers/tracking", response_class=HTMLResponse)
async def tracking_list(request: Request, cursor: str = "") -> Response:
    s = signed_in(request)
    async with api(request, s) as a:
        page = await a.get("/v1/tracking-numbers", limit=50, cursor=cursor, **scoped(s))
        options = await _receiving_options(a, s)
    return render(request, s, "tracking_list.html", page=page, options=options,
                  names={o["id"]: o["name"] for o in options}, cursor=cursor)


def _tn_form(request: Request, s: Session, options: list[dict[str, Any]], values: dict[str, str],
             problem: ApiProblem | None = None, status: int = 200) -> Response:
    created = next((o for o in options if o["id"] == values.get("receiving_number_id")), None) \
        if request.query_params.get("created") else None
    return render(request, s, "tracking_form.html", status, options=options, v=values, created=created,
                  errors=problem.by_field() if problem else {}, problem=problem)


@router.get("/numbers/tracking/new", response_class=HTMLResponse)
async def tracking_new(request: Request, receiving_number_id: str = "") -> Response:
    s = signed_in(request)
    async with api(request, s) as a:
        options = await _receiving_options(a, s)
    return _tn_form(request, s, options, {"number": "", "name": "", "receiving_number_id": receiving_number_id})


@router.post("/numbers/tracking/new")
async def tracking_create(request: Request) -> Response:
    s, form = await posted(request)
    values = {"number": form.get("number"), "name": form.get("name"),
              "receiving_number_id": form.get("receiving_number_id")}
    async with api(request, s) as a:
        try:
            await a.post("/v1/tracking-numbers", owned(s, {k: v.strip() for k, v in values.items()}))
        except ApiProblem as p:
            if p.status >= 500 or p.status == 401:
                raise
            return _tn_form(request, s, await _receiving_options(a, s), values, p, p.status)
    return redirect("/numbers/tracking?done=tn-added")


@router.post("/numbers/tracking/{tn_id}")
async def tracking_update(request: Request, tn_id: str) -> Response:
    s, form = await posted(request)
    async with api(request, s) as a:
        try:
            await a.patch(f"/v1/tracking-numbers/{seg(tn_id)}", {"receiving_number_id": form.get("receiving_number_id")})
        except ApiProblem as p:
            # A 404 naming a field is the receiving number posted (another account's), not the page's.
            if p.status not in (409, 422) and not (p.status == 404 and p.by_field()):
                raise
            return redirect("/numbers/tracking?error=tn-refused")
    return redirect("/numbers/tracking?done=tn-saved")


@router.post("/numbers/tracking/{tn_id}/delete")
async def tracking_delete(request: Request, tn_id: str) -> Response:
    s, _ = await posted(request)
    async with api(request, s) as a:
        await a.delete(f"/v1/tracking-numbers/{seg(tn_id)}")
    return redirect("/numbers/tracking?done=tn-deleted")


# --- calls -----------------------------------------------------------------------------


@router.get("/calls", response_class=HTMLResponse)
async def calls(request: Request) -> Response:
    s = signed_in(request)
    q = request.query_params
    filters = {k: q.get(k, "").strip() for k in ("number", "result", "from", "to")}
    cursor = q.get("cursor", "")
    problem = None
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    async with api(request, s) as a:
        try:
            page = await a.get("/v1/calls", limit=25, cursor=cursor, **filters, **scoped(s))
        except ApiProblem as p:
            if p.status != 422:
                raise
            problem = p
    nxt = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": page["next_cursor"]}) \
        if page.get("next_cursor") else ""
    first = urlencode({k: v for k, v in filters.items() if v})
    return render(request, s, "calls.html", 422 if problem else 200, page=page, f=filters, results=CALL_RESULTS,
                  errors=problem.by_field() if problem else {}, problem=problem, next_qs=nxt, first_qs=first,
                  paged=bool(cursor))


@router.get("/calls/{call_id}", response_class=HTMLResponse)
async def call_page(request: Request, call_id: str) -> Response:
    s = signed_in(request)
    events_error = ""
    events: list[dict[str, Any]] = []
    async with api(request, s) as a:
        call = await a.get(f"/v1/calls/{seg(call_id)}")
        try:
            events = (await a.get(f"/v1/calls/{seg(call_id)}/events"))["items"]
        except ApiProblem as p:
            if p.status != 503:
                raise
            events_error = p.detail
    return render(request, s, "call_detail.html", call=call, lad=ladders.build(events), events_error=events_error)


# --- regions and allow-list ------------------------------------------------------------


@router.get("/regions", response_class=HTMLResponse)
async def regions(request: Request) -> Response:
    s = signed_in(request, account=False)
    regions_error = allow_error = ""
    rows: list[dict[str, Any]] = []
    table: list[list[str]] = []
    async with api(request, s) as a:
        try:
            rows = await a.get("/v1/regions")
        except ApiProblem as p:
            regions_error = p.detail
        r = await a.raw("GET", "/v1/allowlist", params={"format": "csv"})
        if r.status_code >= 400:
            allow_error = ApiProblem.of(r).detail
        else:
            table = list(csv.reader(io.StringIO(r.text)))
    return render(request, s, "regions.html", rows=rows, regions_error=regions_error, table=table,
                  allow_error=allow_error, formats=ALLOWLIST_FILES)


@router.get("/regions/allowlist/{fmt}")
async def allowlist_download(request: Request, fmt: str) -> Response:
    s = signed_in(request, account=False)
    if fmt not in ALLOWLIST_FILES:
        raise ApiProblem(404, f"no allow-list format {fmt!r}")
    async with api(request, s) as a:
        r = await a.raw("GET", "/v1/allowlist", params={"format": fmt})
    if r.status_code >= 400:
        raise ApiProblem.of(r)
    return secure(Response(r.content, media_type=r.headers.get("content-type", "text/plain"), headers={
        "Content-Disposition": f'attachment; filename="{ALLOWLIST_FILES[fmt]}"'}))


# --- webhooks --------------------------------------------------------------------------


def _wh_page(request: Request, s: Session, page: dict[str, Any], values: dict[str, Any],
             problem: ApiProblem | None = None, status: int = 200) -> Response:
    return render(request, s, "webhooks.html", status, page=page, v=values, all_events=WEBHOOK_EVENTS,
                  errors=problem.by_field() if problem else {}, problem=problem)


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks(request: Request) -> Response:
    s = signed_in(request)
    async with api(request, s) as a:
        page = await a.get("/v1/webhooks", limit=100, **scoped(s))
    return _wh_page(request, s, page, {"url": "", "description": "",
                                       "events": ["initiated", "ringing", "answered", "completed"]})


@router.post("/webhooks/new")
async def webhook_create(request: Request) -> Response:
    s, form = await posted(request)
    values = {"url": form.get("url").strip(), "description": form.get("description"), "events": form.all("events")}
    async with api(request, s) as a:
        try:
            await a.post("/v1/webhooks", owned(s, {**values, "secret": form.get("secret")}))
        except ApiProblem as p:
            if p.status >= 500 or p.status == 401:
                raise
            return _wh_page(request, s, await a.get("/v1/webhooks", limit=100, **scoped(s)), values, p, p.status)
    return redirect("/webhooks?done=wh-added")


@router.post("/webhooks/{wh_id}/delete")
async def webhook_delete(request: Request, wh_id: str) -> Response:
    s, _ = await posted(request)
    async with api(request, s) as a:
        await a.delete(f"/v1/webhooks/{seg(wh_id)}")
    return redirect("/webhooks?done=wh-deleted")


@router.get("/webhooks/{wh_id}", response_class=HTMLResponse)
async def webhook_page(request: Request, wh_id: str, cursor: str = "") -> Response:
    s = signed_in(request)
    async with api(request, s) as a:
        wh = await a.get(f"/v1/webhooks/{seg(wh_id)}")
        log = await a.get(f"/v1/webhooks/{seg(wh_id)}/deliveries", limit=100, cursor=cursor)
    return render(request, s, "webhook.html", wh=wh, log=log)


@router.post("/webhooks/{wh_id}/deliveries/{delivery_id}/redeliver")
async def webhook_redeliver(request: Request, wh_id: str, delivery_id: str) -> Response:
    s, _ = await posted(request)
    async with api(request, s) as a:
        await a.post(f"/v1/webhooks/{seg(wh_id)}/deliveries/{seg(delivery_id)}/redeliver")
    return redirect(f"/webhooks/{seg(wh_id)}?done=redelivered")
