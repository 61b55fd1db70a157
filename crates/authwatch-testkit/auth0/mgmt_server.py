"""A stand-in for an Auth0 tenant's Management API, for authwatch's `auth0_logs` pull tests.

What it follows, and where that is documented:

- `POST /oauth/token`, client credentials (form or JSON body, `client_secret_post` or
  `client_secret_basic`), `audience` must be `https://{domain}/api/v2/`; answers
  `{"access_token", "token_type": "Bearer", "expires_in"}` only, as the client credentials
  grant does; errors `{"error", "error_description"}` (401 `invalid_client`, 403
  `access_denied` "Service not found"). Every exchange writes a tenant log event, `seccft` or
  `feccft`, as Auth0 does. https://auth0.com/docs/api/authentication/client-credential-flow/get-token,
  https://auth0.com/docs/secure/tokens/access-tokens/management-api-access-tokens/get-management-api-access-tokens-for-production
- `GET /api/v2/logs?from=<log_id>&take=<n>`: up to `take` (at most 100) events newer than
  `from`, ordered by `log_id`; any other parameter is ignored; the answer carries
  `Link: <...?from=<last>&take=<n>>; rel="next"`, and an empty page's next link is the URL of
  the request itself. Without `from`: search by criteria (`q=date:[<iso> TO *]`, `sort=date:1`
  or `date:-1`, `per_page` at most 100, `page`). Events older than the retention are gone.
  https://auth0.com/docs/deploy-monitor/logs/retrieve-log-events-using-mgmt-api,
  https://auth0.com/docs/deploy-monitor/logs/log-data-retention
- Rate limits: a token bucket; every Management API answer carries `x-ratelimit-limit` (the
  bucket size), `x-ratelimit-remaining` and `x-ratelimit-reset` (Unix seconds); an empty bucket
  answers 429 `{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been
  reached","errorCode":"too_many_requests"}`.
  https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy
- Management API errors are `{statusCode, error, message, errorCode}`: 401 for a missing,
  unknown or expired token, 403 `insufficient_scope` without `read:logs` / `read:log_streams`.
  https://auth0.com/docs/api/management/v2
- `GET /api/v2/log-streams` and `/api/v2/log-streams/<id>`: `{id, name, type, status, sink}`
  with `status` one of `active`, `paused`, `suspended` (the sink includes `httpAuthorization`:
  a secret the poller must never repeat).
  https://auth0.com/docs/api/management/v2/log-streams/get-log-streams,
  https://auth0.com/docs/api/management/v2/log-streams/get-log-streams-by-id

Test controls (not Auth0's): `POST /_control` with a JSON object of knobs (see KNOBS),
`POST /_generate {"n": N, "push": bool}` adds N events (logins: `s`, `fp`, `fu`, `f`),
`GET /_events` lists every `log_id` in order, `GET /_requests` what the API received (path,
query, whether a token came and which), `POST /_push {"url", "authorization"}` makes a Custom
Webhook log stream that POSTs each new event batch (JSONARRAY), retrying a failed delivery 3
times as Auth0 does.

Started by `authwatch_testkit::auth0_server::Auth0Server`: prints `{"port": N}` once it
listens, then serves until killed.
"""

import argparse
import base64
import datetime
import json
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request

from flask import Flask, Response, request
from werkzeug.serving import make_server

CLIENT_ID = "mgmt-logs-reader"
CLIENT_SECRET = "m2m-s3cret-Lq9x7"
STREAM_ID = "lst_0000000000012345"
STREAM_AUTHORIZATION = "stream-auth-Zr4k-never-log"

app = Flask(__name__)


def dumps(o):
    """Compact JSON, as Auth0 sends it."""
    return json.dumps(o, separators=(",", ":"))

LOCK = threading.RLock()
ARGS = None
EVENTS = []  # sorted by log_id
SEQ = [0]
TOKENS = {}  # token -> {"exp": unix, "scope": str}
REQUESTS = []
BUCKET = {"tokens": 0.0, "at": 0.0}
PUSH = {"url": None, "authorization": None, "queue": [], "delivered": 0, "failed": 0}
PUSH_COND = threading.Condition(LOCK)
KNOBS = {
    "token_down": False,      # /oauth/token answers 503
    "token_ttl": 86400,       # expires_in of new tokens
    "scope": "read:logs read:log_streams",
    "bucket": 1000,           # x-ratelimit-limit
    "refill": 1000.0,         # requests added back per second
    "throttle_until": 0,      # Unix seconds: answer 429 until then
    "retry_after": False,     # send Retry-After on 429 too
    "fail_500": 0,            # answer the next N log requests 500
    "malformed": 0,           # answer the next N log pages with broken JSON
    "foreign_link": None,     # next link of the next page points here (origin)
    "retention": 0,           # seconds of retention (0: forever)
    "stream_status": "active",
    "hold_at": 0,             # the N-th `from` request waits (up to 120 s) before answering
}
FROM_REQUESTS = [0]
HELD = threading.Event()
RELEASE = threading.Event()


def now_iso(t=None):
    t = time.time() if t is None else t
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def parse_iso(s):
    s = s.strip().replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()


def new_log_id():
    # Auth0's log ids are 56 digits, increasing: "900" + date + a sequence.
    SEQ[0] += 1
    day = time.strftime("%Y%m%d", time.gmtime())
    return ("900" + day + str(SEQ[0]).rjust(45, "0"))[:56]


def add_event(kind, description, extra=None, t=None):
    with LOCK:
        e = {
            "log_id": new_log_id(),
            "date": now_iso(t),
            "type": kind,
            "description": description,
            "client_id": "app-client-1",
            "client_name": "Storefront",
            "connection": "Username-Password-Authentication",
            "connection_id": "con_0000000000000001",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
            "user_id": "auth0|user" + str(SEQ[0] % 97),
            "user_name": f"user{SEQ[0] % 97}@example.test",
            "hostname": ARGS.domain,
            "strategy": "auth0",
            "strategy_type": "database",
        }
        if extra:
            e.update(extra)
        e["_ts"] = t if t is not None else time.time()
        EVENTS.append(e)
        if PUSH["url"]:
            PUSH["queue"].append(e["log_id"])
            PUSH_COND.notify_all()
        return e


def public(e):
    return {k: v for k, v in e.items() if not k.startswith("_")}


def mgmt_error(status, error, message, code=None):
    body = {"statusCode": status, "error": error, "message": message}
    if code:
        body["errorCode"] = code
    return Response(dumps(body), status=status, mimetype="application/json")


def ratelimit_headers(resp, remaining):
    resp.headers["x-ratelimit-limit"] = str(KNOBS["bucket"])
    resp.headers["x-ratelimit-remaining"] = str(max(int(remaining), 0))
    if KNOBS["throttle_until"] > time.time():
        reset = int(KNOBS["throttle_until"])
    else:
        missing = KNOBS["bucket"] - remaining
        reset = int(time.time() + (missing / KNOBS["refill"] if KNOBS["refill"] > 0 else 60)) + 1
    resp.headers["x-ratelimit-reset"] = str(reset)
    return resp


def take_from_bucket():
    """Refills the bucket; returns (allowed, remaining after this request)."""
    t = time.time()
    b = BUCKET
    b["tokens"] = min(KNOBS["bucket"], b["tokens"] + (t - b["at"]) * KNOBS["refill"])
    b["at"] = t
    if KNOBS["throttle_until"] > t:
        return False, 0
    if b["tokens"] >= 1:
        b["tokens"] -= 1
        return True, b["tokens"]
    return False, b["tokens"]


def record_request(token_ok):
    REQUESTS.append({
        "path": request.path,
        "query": request.query_string.decode(),
        "authorization": bool(request.headers.get("Authorization")),
        "token_ok": token_ok,
        "user_agent": request.headers.get("User-Agent", ""),
    })


def check_token(needed_scope):
    """None when the bearer token is valid for `needed_scope`, else the error response."""
    auth = request.headers.get("Authorization", "")
    token = auth[7:] if auth.startswith("Bearer ") else None
    info = TOKENS.get(token) if token else None
    record_request(info is not None and info["exp"] > time.time())
    if not token:
        return mgmt_error(401, "Unauthorized", "Missing authentication")
    if info is None:
        return mgmt_error(401, "Unauthorized", "Invalid token")
    if info["exp"] <= time.time():
        return mgmt_error(401, "Unauthorized", "Expired token received for JSON Web Token validation")
    if needed_scope not in info["scope"].split():
        return mgmt_error(403, "Forbidden", f"Insufficient scope, expected any of: {needed_scope}",
                          "insufficient_scope")
    return None


def guarded(needed_scope):
    """Token, then rate limit. Returns (error response or None, remaining)."""
    err = check_token(needed_scope)
    if err is not None:
        return err, None
    ok, remaining = take_from_bucket()
    if not ok:
        resp = mgmt_error(429, "Too Many Requests", "Global limit has been reached", "too_many_requests")
        if KNOBS["retry_after"] and KNOBS["throttle_until"] > time.time():
            resp.headers["Retry-After"] = str(int(KNOBS["throttle_until"] - time.time()) + 1)
        return ratelimit_headers(resp, 0), None
    return None, remaining


def form_or_json():
    if (request.content_type or "").startswith("application/json"):
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return request.form.to_dict()


@app.post("/oauth/token")
def token():
    with LOCK:
        if KNOBS["token_down"]:
            return Response(dumps({"error": "temporarily_unavailable",
                                        "error_description": "Service Unavailable"}),
                            status=503, mimetype="application/json")
        p = form_or_json()
        client_id, secret = p.get("client_id"), p.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, secret = base64.b64decode(basic[6:]).decode().split(":", 1)
            except Exception:
                pass
        if p.get("grant_type") != "client_credentials":
            return Response(dumps({"error": "unsupported_grant_type",
                                        "error_description": "Unsupported grant type"}),
                            status=400, mimetype="application/json")
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            add_event("feccft", "Unauthorized", {"client_id": client_id or "", "client_name": ""})
            return Response(dumps({"error": "access_denied", "error_description": "Unauthorized"}),
                            status=401, mimetype="application/json")
        audience = p.get("audience")
        if audience != f"https://{ARGS.domain}/api/v2/":
            add_event("feccft", f"Service not found: {audience}", {"client_id": client_id})
            return Response(dumps({"error": "access_denied",
                                        "error_description": f"Service not found: {audience}"}),
                            status=403, mimetype="application/json")
        tok = secrets.token_urlsafe(32)
        TOKENS[tok] = {"exp": time.time() + KNOBS["token_ttl"], "scope": KNOBS["scope"]}
        add_event("seccft", "Client Credentials for Access Token",
                  {"client_id": client_id, "client_name": "authwatch logs reader",
                   "user_id": "", "user_name": "", "audience": audience, "scope": KNOBS["scope"]})
        return Response(dumps({"access_token": tok, "token_type": "Bearer",
                                    "expires_in": KNOBS["token_ttl"]}),
                        status=200, mimetype="application/json")


def alive(e):
    return KNOBS["retention"] <= 0 or e["_ts"] >= time.time() - KNOBS["retention"]


@app.get("/api/v2/logs")
def logs():
    if request.args.get("from") is not None:
        with LOCK:
            FROM_REQUESTS[0] += 1
            hold = KNOBS["hold_at"] and FROM_REQUESTS[0] == KNOBS["hold_at"]
            if hold:
                REQUESTS.append({"path": request.path, "query": request.query_string.decode(),
                                 "held": True})
        if hold:
            HELD.set()
            RELEASE.wait(120)
    with LOCK:
        err, remaining = guarded("read:logs")
        if err is not None:
            return err
        base = request.host_url.rstrip("/")
        if KNOBS["fail_500"] > 0:
            KNOBS["fail_500"] -= 1
            return ratelimit_headers(mgmt_error(500, "Internal Server Error", "Internal error"), remaining)
        frm = request.args.get("from")
        if frm is not None:
            take = request.args.get("take", "50")
            if not take.isdigit() or not 1 <= int(take) <= 100:
                return ratelimit_headers(mgmt_error(
                    400, "Bad Request",
                    f"Query validation error: 'Invalid value {take} for take' on property take "
                    "(The total amount of entries to retrieve when using the from parameter.).",
                    "invalid_query_string"), remaining)
            take = int(take)
            page = [e for e in EVENTS if e["log_id"] > frm and alive(e)][:take]
            last = page[-1]["log_id"] if page else None
            if last is None:
                next_url = request.url  # an empty page: the same URL again
            else:
                origin = KNOBS["foreign_link"] or base
                KNOBS["foreign_link"] = None
                next_url = f"{origin}/api/v2/logs?from={last}&take={take}"
            body = dumps([public(e) for e in page])
            if KNOBS["malformed"] > 0 and page:
                KNOBS["malformed"] -= 1
                body = body[: len(body) // 2]
            resp = Response(body, status=200, mimetype="application/json")
            resp.headers["Link"] = f'<{next_url}>; rel="next"'
            return ratelimit_headers(resp, remaining)
        # Search by criteria.
        per_page = request.args.get("per_page", "50")
        page_no = request.args.get("page", "0")
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100 or not page_no.isdigit():
            return ratelimit_headers(mgmt_error(400, "Bad Request", "Query validation error",
                                                "invalid_query_string"), remaining)
        found = [e for e in EVENTS if alive(e)]
        q = request.args.get("q")
        if q:
            if not (q.startswith("date:[") and q.endswith(" TO *]")):
                return ratelimit_headers(mgmt_error(400, "Bad Request", "Invalid query",
                                                    "invalid_query_string"), remaining)
            try:
                since = parse_iso(q[len("date:["):-len(" TO *]")])
            except ValueError:
                return ratelimit_headers(mgmt_error(400, "Bad Request", "Invalid query",
                                                    "invalid_query_string"), remaining)
            found = [e for e in found if e["_ts"] >= since]
        sort = request.args.get("sort", "date:-1")
        found.sort(key=lambda e: (e["_ts"], e["log_id"]), reverse=(sort != "date:1"))
        n, p = int(per_page), int(page_no)
        body = dumps([public(e) for e in found[p * n:(p + 1) * n]])
        return ratelimit_headers(Response(body, status=200, mimetype="application/json"), remaining)


def stream():
    return {
        "id": STREAM_ID,
        "name": "authwatch webhook",
        "type": "http",
        "status": KNOBS["stream_status"],
        "sink": {
            "httpContentFormat": "JSONARRAY",
            "httpContentType": "application/json",
            "httpEndpoint": PUSH["url"] or "https://authwatch.example.test/auth0/logs",
            "httpAuthorization": STREAM_AUTHORIZATION,
        },
    }


@app.get("/api/v2/log-streams")
def log_streams():
    with LOCK:
        err, remaining = guarded("read:log_streams")
        if err is not None:
            return err
        return ratelimit_headers(Response(dumps([stream()]), mimetype="application/json"), remaining)


@app.get("/api/v2/log-streams/<sid>")
def log_stream(sid):
    with LOCK:
        err, remaining = guarded("read:log_streams")
        if err is not None:
            return err
        if sid != STREAM_ID:
            return ratelimit_headers(mgmt_error(404, "Not Found", "The log stream does not exist",
                                                "inexistent_log_stream"), remaining)
        return ratelimit_headers(Response(dumps(stream()), mimetype="application/json"), remaining)


# --- test controls ---

@app.post("/_control")
def control():
    knobs = request.get_json(force=True)
    with LOCK:
        for k, v in knobs.items():
            if k not in KNOBS:
                return Response(f"unknown knob {k}\n", status=400)
            KNOBS[k] = v
        if "bucket" in knobs:
            BUCKET["tokens"] = float(KNOBS["bucket"])
        if knobs.get("expire_tokens"):
            pass
        return Response(dumps(KNOBS), mimetype="application/json")


@app.post("/_expire_tokens")
def expire_tokens():
    with LOCK:
        for info in TOKENS.values():
            info["exp"] = 0
        return Response("{}", mimetype="application/json")


LOGIN_KINDS = [("s", "Success Login"), ("fp", "Wrong email or password."),
               ("fu", "Wrong email or password."), ("s", "Success Login"), ("f", "Login failed")]


@app.post("/_generate")
def generate():
    p = request.get_json(force=True)
    n = int(p.get("n", 1))
    age = float(p.get("age_seconds", 0))
    with LOCK:
        t0 = time.time() - age
        for i in range(n):
            kind, desc = LOGIN_KINDS[i % len(LOGIN_KINDS)]
            add_event(kind, desc, t=t0 + i * (age / max(n, 1)) if age else None)
        return Response(dumps({"events": len(EVENTS)}), mimetype="application/json")


@app.get("/_held")
def held():
    return Response(dumps(HELD.is_set()), mimetype="application/json")


@app.post("/_release")
def release():
    RELEASE.set()
    return Response("{}", mimetype="application/json")


@app.get("/_events")
def events():
    with LOCK:
        return Response(dumps([e["log_id"] for e in EVENTS]), mimetype="application/json")


@app.get("/_requests")
def requests_seen():
    with LOCK:
        return Response(dumps(REQUESTS), mimetype="application/json")


@app.get("/_push")
def push_state():
    with LOCK:
        return Response(dumps({"queued": len(PUSH["queue"]), "delivered": PUSH["delivered"],
                                    "failed": PUSH["failed"]}), mimetype="application/json")


@app.post("/_push")
def push_setup():
    p = request.get_json(force=True)
    with LOCK:
        PUSH["url"], PUSH["authorization"] = p["url"], p["authorization"]
        if p.get("backlog"):
            PUSH["queue"].extend(e["log_id"] for e in EVENTS)
        PUSH_COND.notify_all()
        return Response("{}", mimetype="application/json")


def pusher():
    """The Custom Webhook log stream: JSONARRAY batches of up to 100, 3 retries per batch."""
    while True:
        with LOCK:
            while not PUSH["queue"]:
                PUSH_COND.wait()
            ids = PUSH["queue"][:100]
            by_id = {e["log_id"]: e for e in EVENTS if e["log_id"] in set(ids)}
            batch = [{"log_id": i, "data": public(by_id[i])} for i in ids if i in by_id]
            url, auth = PUSH["url"], PUSH["authorization"]
        body = dumps(batch).encode()
        ok = False
        for attempt in range(4):
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "Authorization": auth})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    ok = 200 <= r.status < 300
            except Exception:
                ok = False
            if ok:
                break
            time.sleep(0.5 * (attempt + 1))
        with LOCK:
            del PUSH["queue"][:len(ids)]
            if ok:
                PUSH["delivered"] += len(batch)
            else:
                PUSH["failed"] += len(batch)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--domain", default="tenant.example.test")
    p.add_argument("--host", default="127.0.0.1")
    ARGS = p.parse_args()
    BUCKET["tokens"], BUCKET["at"] = float(KNOBS["bucket"]), time.time()
    threading.Thread(target=pusher, daemon=True).start()
    srv = make_server(ARGS.host, 0, app, threaded=True)
    print(dumps({"port": srv.server_port}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
