"""A small OAuth2/OIDC authorization server for authwatch's tests, built on Authlib.

The token endpoint is Authlib's AuthorizationServer with its own grant handling: the resource
owner password grant, Auth0's password-realm grant (a password grant subclass that also checks
`realm`) and client credentials, with client_secret_post, client_secret_basic and public
clients. Tokens are JWTs signed with joserfc (RS256, or ES256 in `es256` mode), with Auth0's
shape: `iss` with a trailing slash, `aud` a list, `gty`, `azp`, and a namespaced custom claim.
It serves `/.well-known/openid-configuration` and `/.well-known/jwks.json` too, accepts JSON
bodies as Auth0 does, and sends Auth0's `x-ratelimit-*` headers.

Modes (`--mode`) make it misbehave in one way each: error500, rate_limited, blocked, slow,
no_claim, expired, bad_signature, es256, and wrong_issuer, wrong_audience, invalid_client and
unauthorized_client (these two for the confidential probe client only), action_error (an Action
denies every password login). `ok` is a healthy server.

Knobs change it while it runs (`POST /_control` with a JSON object; every key optional): `mode`,
`delay` (seconds, for `slow`), `locked` (user names answered 429 `too_many_attempts`, as
brute-force protection does), `rate_limit` (token requests per second for the whole tenant; more
are answered 429 `too_many_requests` with `Retry-After: 1`; 0 = none) and `api_status` (the
status `GET /api/v2/users/<id>` answers, a stand-in for an endpoint probes do not use).
`PUT /_delay?seconds=S` is short for the knobs `{"mode": "slow", "delay": S}`: every later token
request is answered correctly but S seconds late (S = 0: `{"mode": null, "delay": null}`, the
start mode again), so one server can turn slow and recover during a test.
A second user, `app-user@example.test`, logs in like the probe user (real traffic's user).

Started by `authwatch_testkit::oauth_server::OAuthServer`: it prints one JSON line
`{"port": N}` on stdout once it listens, then serves until killed.
"""

import argparse
import base64
import io
import json
import ssl
import sys
import threading
import time
import urllib.parse

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "probe-client"
CLIENT_SECRET = "s3cr3t-client-Zq8w"
PUBLIC_CLIENT_ID = "probe-public"
USERNAME = "probe@example.test"
PASSWORD = "p4ss-W0rd-Xy7"
REALM = "Username-Password-Authentication"
AUDIENCE = "https://api.example.test"
CLAIM = "https://probe.example.test/actions_ran"
REALM_GRANT = "http://auth0.com/oauth/grant-type/password-realm"
REDIRECT_URI = "https://authwatch.invalid/callback"
# The probe user's TOTP factor (base32 of "12345678901234567890", RFC 6238's test key).
TOTP_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
APP_USERNAME = "app-user@example.test"
APP_PASSWORD = "app-P4ss-w0rd-Qv3"

ARGS = None
ISSUER = None
KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig", "alg": "RS256"}, private=True)
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1"}, private=True)
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"}, private=True)
REQUESTS = []
NONCES = {}  # authorization code -> the authorize request's nonce (login_pages.py)
AUDIENCES = {}  # authorization code -> the authorize request's audience
LOCK = threading.Lock()
REMAINING = [30]
KNOBS = {"mode": None, "delay": None, "locked": [], "rate_limit": 0, "api_status": 200}
WINDOW = {"second": 0, "count": 0}


def mode():
    return KNOBS["mode"] or ARGS.mode


class Client(ClientMixin):
    def __init__(self, client_id, secret):
        self.client_id = client_id
        self.secret = secret

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return REDIRECT_URI

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri == REDIRECT_URI

    def check_client_secret(self, client_secret):
        return self.secret is not None and client_secret == self.secret

    def check_endpoint_auth_method(self, method, endpoint):
        if self.secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        if self.secret is None:
            return grant_type in ("password", REALM_GRANT, "authorization_code")
        return True


CLIENTS = {
    CLIENT_ID: Client(CLIENT_ID, CLIENT_SECRET),
    PUBLIC_CLIENT_ID: Client(PUBLIC_CLIENT_ID, None),
}

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_user(self, username, password):
        if username == USERNAME and password == PASSWORD:
            return {"sub": "auth0|probe", "name": username}
        if username == APP_USERNAME and password == APP_PASSWORD:
            return {"sub": "auth0|app-user", "name": username}
        # What Auth0 answers: 403 invalid_grant "Wrong email or password."
        raise InvalidGrantError(description="Wrong email or password.", status_code=403)


class PasswordRealmGrant(PasswordGrant):
    GRANT_TYPE = REALM_GRANT

    def validate_token_request(self):
        realm = self.request.form.get("realm")
        if not realm:
            raise InvalidRequestError("Missing required parameter: realm")
        if realm != REALM:
            raise InvalidRequestError(f"Unknown realm {realm}")
        return super().validate_token_request()


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def sign(claims):
    if mode() == "es256":
        return jwt.encode({"alg": "ES256", "kid": "ec-1", "typ": "JWT"}, claims, EC_KEY)
    key = OTHER_KEY if mode() == "bad_signature" else KEY
    return jwt.encode({"alg": "RS256", "kid": "key-1", "typ": "JWT"}, claims, key)


def generate_token(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
    now = int(time.time())
    form = request.form
    audience = form.get("audience") or AUDIENCES.get(form.get("code") or "")
    exp = now - 3600 if mode() == "expired" else now + 3600
    if mode() == "wrong_audience" and audience:
        audience = "https://another-api.example.test"
    claims = {
        "iss": "https://someone-else.example.test/" if mode() == "wrong_issuer" else ISSUER,
        "sub": user["sub"] if user else f"{client.get_client_id()}@clients",
        "aud": [audience, ISSUER + "userinfo"] if audience else ISSUER + "userinfo",
        "iat": now,
        "exp": exp,
        "azp": client.get_client_id(),
        "scope": scope or "",
        }
    if grant_type != "authorization_code":
        claims["gty"] = "client-credentials" if grant_type == "client_credentials" else "password"
    if mode() != "no_claim":
        claims[CLAIM] = True
    token = {"access_token": sign(claims), "token_type": "Bearer", "expires_in": 3600}
    if user and "openid" in (scope or "").split():
        id_claims = {
            "iss": ISSUER, "sub": user["sub"], "aud": client.get_client_id(),
            "iat": now, "exp": exp, "name": user["name"],
        }
        nonce = NONCES.get(form.get("code") or "")
        if nonce:
            id_claims["nonce"] = nonce
        if mode() != "no_claim":
            id_claims[CLAIM] = True
        token["id_token"] = sign(id_claims)
    if scope:
        token["scope"] = scope
    return token


def query_client(client_id):
    return CLIENTS.get(client_id)


def save_token(token, req):
    pass


class JsonToForm:
    """Auth0 takes JSON bodies on /oauth/token; Authlib's grants read forms. Convert."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        ctype = environ.get("CONTENT_TYPE", "")
        environ["authwatch.json"] = False
        if environ.get("PATH_INFO") == "/oauth/token" and ctype.startswith("application/json"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = {}
            body = urllib.parse.urlencode({k: str(v) for k, v in data.items()}).encode()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            environ["authwatch.json"] = True
        return self.app(environ, start_response)


app = Flask(__name__)
server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
server.register_grant(PasswordGrant)
server.register_grant(PasswordRealmGrant)
server.register_grant(ClientCredentialsGrant)
import login_pages  # noqa: E402  (the hosted login pages and the authorization code grant)
login_pages.install(sys.modules[__name__])
server.register_token_generator("default", generate_token)


def canned(status, error, description, headers=None):
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


@app.route("/oauth/token", methods=["POST"])
def issue_token():
    with LOCK:
        REQUESTS.append({
            "content_type": "json" if request.environ.get("authwatch.json") else "form",
            "grant_type": request.form.get("grant_type"),
            "client_auth": "basic" if request.headers.get("Authorization", "").startswith("Basic ") else "post",
            "realm": request.form.get("realm"),
            "user_agent": request.headers.get("User-Agent"),
        })
    m = mode()
    if m == "slow":
        time.sleep(KNOBS["delay"] if KNOBS["delay"] is not None else ARGS.delay)
    with LOCK:
        limit = KNOBS["rate_limit"]
        second = int(time.time())
        if WINDOW["second"] != second:
            WINDOW["second"], WINDOW["count"] = second, 0
        WINDOW["count"] += 1
        over = bool(limit) and WINDOW["count"] > limit
        locked = request.form.get("username") in KNOBS["locked"]
    if m == "error500":
        return canned(500, "server_error", "Internal error")
    if m == "rate_limited" or over:
        return canned(429, "too_many_requests", "Too many requests. Check the X-RateLimit-* headers.",
                      {"Retry-After": "7" if m == "rate_limited" else "1"})
    if m == "blocked" or locked:
        return canned(429, "too_many_attempts",
                      "Your account has been blocked after multiple consecutive login attempts.")
    grant = request.form.get("grant_type")
    if m in ("invalid_client", "unauthorized_client") and client_id_of(request) == CLIENT_ID:
        if m == "invalid_client":
            return canned(401, "invalid_client", "Client authentication failed")
        return canned(403, "unauthorized_client", f"Grant type '{grant}' not allowed for the client.")
    if m == "action_error" and grant in ("password", REALM_GRANT):
        return canned(403, "access_denied", "Access denied by the post-login Action.")
    return server.create_token_response()


def client_id_of(req):
    auth = req.headers.get("Authorization", "")
    if auth.startswith("Basic "):
        try:
            return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        except ValueError:
            return None
    return req.form.get("client_id")


@app.route("/_control", methods=["POST"])
def control():
    knobs = request.get_json(force=True, silent=True) or {}
    with LOCK:
        for k, v in knobs.items():
            if k in KNOBS:
                KNOBS[k] = v
            elif k in login_pages.PAGE_KNOBS:
                login_pages.PAGE_KNOBS[k] = v
        return jsonify({**KNOBS, **login_pages.PAGE_KNOBS})


@app.route("/api/v2/users/<user_id>")
def api_user(user_id):
    status = KNOBS["api_status"]
    if status != 200:
        return canned(status, "server_error" if status >= 500 else "invalid_request", "Stand-in answer")
    return jsonify({"user_id": user_id})


@app.after_request
def ratelimit_headers(resp):
    if request.path == "/oauth/token":
        with LOCK:
            REMAINING[0] = max(REMAINING[0] - 1, 0)
            remaining = 0 if mode() == "rate_limited" else REMAINING[0]
        resp.headers["X-RateLimit-Limit"] = "30"
        resp.headers["X-RateLimit-Remaining"] = str(remaining)
        resp.headers["X-RateLimit-Reset"] = str(int(time.time()) + 60)
    return resp


@app.route("/.well-known/openid-configuration")
def discovery():
    return jsonify({
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "authorize",
        "token_endpoint": ISSUER + "oauth/token",
        "jwks_uri": ISSUER + ".well-known/jwks.json",
        "grant_types_supported": ["password", REALM_GRANT, "client_credentials", "authorization_code"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    })


@app.route("/.well-known/jwks.json")
def jwks():
    return jsonify({"keys": [KEY.as_dict(private=False), EC_KEY.as_dict(private=False)]})


@app.route("/_delay", methods=["PUT", "POST"])
def set_delay():
    """Short for `/_control` with `{"mode": "slow", "delay": S}` (S = 0: the start mode again)."""
    try:
        seconds = max(float(request.args.get("seconds", "0")), 0.0)
    except ValueError:
        return canned(400, "invalid_request", "seconds must be a number")
    with LOCK:
        if seconds > 0:
            KNOBS["mode"], KNOBS["delay"] = "slow", seconds
        else:
            KNOBS["mode"], KNOBS["delay"] = None, None
        return jsonify(KNOBS)


@app.route("/_requests")
def requests_seen():
    with LOCK:
        return jsonify(REQUESTS)


def main():
    global ARGS, ISSUER
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="ok")
    p.add_argument("--delay", type=float, default=5.0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--host", default="127.0.0.1")
    ARGS = p.parse_args()
    ctx = None
    if ARGS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv = make_server(ARGS.host, 0, JsonToForm(app), threaded=True, ssl_context=ctx)
    scheme = "https" if ctx else "http"
    host = "localhost" if ctx else ARGS.host
    ISSUER = f"{scheme}://{host}:{srv.server_port}/"
    print(json.dumps({"port": srv.server_port, "issuer": ISSUER}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
