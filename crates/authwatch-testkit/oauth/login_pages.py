"""The hosted login pages of the test identity provider and its authorization code grant.

Modelled on Auth0's Universal Login (identifier first): `GET /authorize` validates the request
with Authlib (client, redirect URI, `response_type=code`, PKCE `code_challenge` required),
opens a transaction bound to a session cookie and redirects to `/u/login/identifier?state=T`.
Each page is a form carrying the transaction `state` and a CSRF field tied to the session
cookie (a request without them is refused with 400, as a browser without cookies would be);
a wrong password re-renders the password page with "Wrong email or password" (400); a locked
user gets Auth0's "blocked" message; the MFA page takes an RFC 6238 code (computed here with
the standard library, independent of the probe's crate); the consent page has Accept/Decline.
At the end, Authlib's AuthorizationCodeGrant (with the CodeChallenge extension) issues the code
in a 302 to the redirect URI, and the token endpoint exchanges it against the verifier.

Knobs (`POST /_control`, every key optional):
  login:  "identifier_first" (default) or "one_page" (username and password in one form)
  mfa:    true: an OTP page after the password       consent: true: a consent page at the end
  page:   a hostile or broken variant instead of the login page: "captcha" (reCAPTCHA markup),
          "changed" (no form: a redesigned page), "huge" (50 MiB of HTML, streamed), "loop"
          (redirects forever), "garbage" (random bytes), "offsite" (the login form posts to
          the knob `offsite_action`)
  offsite_action: where the "offsite" form posts.
`GET /_logins` lists what the login forms received (field names and whether the password was
right; never the values).
"""

import base64
import functools
import hashlib
import hmac
import html
import os
import secrets
import struct
import time
import urllib.parse

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Response, jsonify, make_response, redirect, request

S = None  # the server module
TX = {}  # transaction id -> {"query", "session", "csrf", "user", "username"}
CODES = {}
LOGINS = []
PAGE_KNOBS = {"login": "identifier_first", "mfa": False, "consent": False, "page": None,
              "offsite_action": None}
COOKIE = "auth0"


def totp(secret_b32, t, digits=6, step=30):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(t // step)), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


class AuthCode:
    def __init__(self, code, client_id, redirect_uri, scope, user, challenge, method):
        self.code, self.client_id, self.redirect_uri = code, client_id, redirect_uri
        self.scope, self.user = scope, user
        self.code_challenge, self.code_challenge_method = challenge, method
        self.created = time.time()

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_code_challenge(self):
        return self.code_challenge

    def get_code_challenge_method(self):
        return self.code_challenge_method

    def get_auth_time(self):
        return int(self.created)

    def is_expired(self):
        return time.time() - self.created > 300


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code, req):
        data = req.payload.data
        CODES[code] = AuthCode(code, req.client.get_client_id(), req.payload.redirect_uri,
                               req.scope, req.user, data.get("code_challenge"),
                               data.get("code_challenge_method"))
        if data.get("nonce"):
            S.NONCES[code] = data.get("nonce")
        if data.get("audience"):
            S.AUDIENCES[code] = data.get("audience")

    def query_authorization_code(self, code, client):
        item = CODES.get(code)
        if item and item.client_id == client.get_client_id() and not item.is_expired():
            return item
        return None

    def delete_authorization_code(self, authorization_code):
        CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


def page(title, body, status=200):
    html = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} | Test App</title>
<link rel="stylesheet" href="https://cdn.auth0.com/ulp/react-components/1.0/css/main.cdn.min.css"></head>
<body class="_widget-auto-layout"><main class="_widget login-id"><section class="c2b3e4f5 _prompt-box-outer">
<header><h1 class="c1a2b3c4">{title}</h1></header><div class="c9d8e7f6">{body}</div></section></main></body></html>"""
    resp = make_response(html, status)
    resp.headers["Content-Type"] = "text/html; charset=utf-8"
    return resp


def hidden(tx_id):
    tx = TX[tx_id]
    return (f'<input type="hidden" name="state" value="{tx_id}">'
            f'<input type="hidden" name="_csrf" value="{tx["csrf"]}">')


def error_html(message):
    if not message:
        return ""
    return (f'<div class="ulp-error-info"><span id="error-element-password" '
            f'class="ulp-input-error-message">{message}</span></div>')


def current_tx():
    """The transaction of this request, checked against the session cookie and CSRF field."""
    tx_id = request.values.get("state", "")
    tx = TX.get(tx_id)
    if not tx or request.cookies.get(COOKIE) != tx["session"]:
        return None, page("Error", "<p class='error'>Invalid state: the session cookie is missing or does not match.</p>", 400)
    if request.method == "POST" and request.form.get("_csrf") != tx["csrf"]:
        return None, page("Error", "<p class='error'>Invalid CSRF token.</p>", 400)
    return tx_id, None


def in_transaction(logged_in=False):
    """A page route of a transaction: the request's `state`, cookie and CSRF field are checked
    (and, when `logged_in`, that the password step was passed) before the view runs with the
    transaction id."""
    def wrap(view):
        @functools.wraps(view)
        def checked():
            tx_id, err = current_tx()
            if err:
                return err
            if logged_in and not TX[tx_id]["user"]:
                return page("Error", "<p class='error'>Log in first.</p>", 400)
            return view(tx_id)
        return checked
    return wrap


def login_form(tx_id, one_page, message=""):
    k = PAGE_KNOBS
    if k["page"] == "changed":
        return page("We are improving your login", "<p>Our login is getting a new look. Please come back later.</p>")
    if k["page"] == "offsite":
        action = k["offsite_action"]
        return page("Log in", f"""<form method="POST" action="{action}" data-form-primary="true">{hidden(tx_id)}
<input name="username" id="username" type="text" inputmode="email" autocomplete="email">
<input name="password" id="password" type="password"><button type="submit" name="action" value="default">Continue</button></form>""")
    captcha = ""
    if k["page"] == "captcha":
        captcha = ('<div class="ulp-captcha-container"><div class="g-recaptcha" data-sitekey="6LcTest"></div></div>'
                   '<script src="https://www.recaptcha.net/recaptcha/api.js"></script><input type="hidden" name="captcha">')
    password = '<input class="input" name="password" id="password" type="password" required autocomplete="current-password">' if one_page else ""
    action = "/u/login" if one_page else "/u/login/identifier"
    return page("Log in", f"""<form method="POST" action="{action}?state={tx_id}" class="c8a5b0b9d _form-login-id" data-form-primary="true">
{hidden(tx_id)}<div class="input-wrapper"><label for="username">Email address*</label>
<input class="input" inputmode="email" name="username" id="username" type="text" value="" required autocomplete="email" autofocus></div>
{password}{captcha}{error_html(message)}<input type="hidden" name="js-available" value="false"/>
<button type="submit" name="action" value="default" class="c3a1d7f2 _button-login-id">Continue</button></form>
<form method="post" data-provider="google" class="social"><input type="hidden" name="state" value="{tx_id}">
<input type="hidden" name="connection" value="google-oauth2"><button type="submit">Continue with Google</button></form>""",
                400 if message else 200)


def password_form(tx_id, message=""):
    user = html.escape(TX[tx_id].get("username", ""))
    return page("Enter your password", f"""<form method="POST" action="/u/login/password?state={tx_id}" class="_form-login-password" data-form-primary="true">
{hidden(tx_id)}<input type="hidden" name="username" value="{user}"><span class="ulp-authenticator-selector-text">{user}</span>
<input class="input" name="password" id="password" type="password" required autocomplete="current-password">
{error_html(message)}<button type="submit" name="action" value="default">Continue</button></form>
<a href="/u/reset-password/request/Username-Password-Authentication?state={tx_id}">Forgot password?</a>""",
                400 if message else 200)


def otp_form(tx_id, message=""):
    return page("Verify Your Identity", f"""<form method="POST" action="/u/mfa-otp-challenge?state={tx_id}">
{hidden(tx_id)}<input class="input" name="code" id="code" type="text" inputmode="numeric" pattern="[0-9]*" autocomplete="one-time-code" required>
<input type="checkbox" name="rememberBrowser" value="true">{error_html(message)}
<button type="submit" name="action" value="default">Continue</button></form>""", 400 if message else 200)


def consent_form(tx_id):
    return page("Authorize Test App", f"""<p>Hi probe, Test App is requesting access to your account.</p>
<form method="POST" action="/u/consent?state={tx_id}">{hidden(tx_id)}
<button type="submit" name="action" value="deny">Decline</button>
<button type="submit" name="action" value="accept">Accept</button></form>""")


def after_password(tx_id):
    if PAGE_KNOBS["mfa"]:
        return redirect(f"/u/mfa-otp-challenge?state={tx_id}")
    return after_mfa(tx_id)


def after_mfa(tx_id):
    if PAGE_KNOBS["consent"]:
        return redirect(f"/u/consent?state={tx_id}")
    return finish(tx_id)


def finish(tx_id, deny=False):
    """Back to the redirect URI through Authlib, with the original authorize request."""
    tx = TX.pop(tx_id)
    with S.app.test_request_context("/authorize?" + tx["query"]):
        grant = S.server.get_consent_grant()
        if deny or S.mode() == "action_error":
            uri = grant.redirect_uri
            params = {"error": "access_denied",
                      "error_description": "Access denied by the post-login Action." if not deny else "User did not authorize the request",
                      "state": grant.request.payload.state}
            return redirect(uri + "?" + urllib.parse.urlencode(params))
        return S.server.create_authorization_response(grant_user=tx["user"], grant=grant)


def check_password(tx_id, username, password):
    ok = username == S.USERNAME and password == S.PASSWORD
    LOGINS.append({"fields": sorted(request.form.keys()), "password_ok": ok})
    if username in S.KNOBS["locked"]:
        return "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it."
    if not ok:
        return "Wrong email or password"
    TX[tx_id]["user"] = {"sub": "auth0|probe", "name": username}
    return None


def install(srv):
    global S
    S = srv
    app = srv.app
    srv.server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])

    @app.route("/authorize")
    def authorize():
        if PAGE_KNOBS["page"] == "loop":
            return redirect("/authorize/loop?n=1")
        try:
            srv.server.get_consent_grant()
        except OAuth2Error as e:
            return page("Error", f"<p class='error'>{e.error}: {e.description or ''}</p>", 400)
        tx_id = secrets.token_urlsafe(16)
        session = secrets.token_urlsafe(24)
        TX[tx_id] = {"query": request.query_string.decode(), "session": session,
                     "csrf": secrets.token_urlsafe(16), "user": None}
        first = "/u/login" if PAGE_KNOBS["login"] == "one_page" else "/u/login/identifier"
        resp = redirect(f"{first}?state={tx_id}")
        resp.set_cookie(COOKIE, session, httponly=True, samesite="None", path="/")
        resp.set_cookie("did", secrets.token_urlsafe(8), httponly=True, path="/")
        return resp

    @app.route("/authorize/loop")
    def loop():
        n = int(request.args.get("n", "1"))
        return redirect(f"/authorize/loop?n={n + 1}")

    @app.route("/u/login", methods=["GET", "POST"])
    @app.route("/u/login/identifier", methods=["GET", "POST"])
    def login():
        if PAGE_KNOBS["page"] == "huge":
            chunk = b"<div>" + b"x" * (1024 * 1024 - 5)

            def gen():
                yield b"<!DOCTYPE html><html><body>"
                for _ in range(50):
                    yield chunk
            return Response(gen(), mimetype="text/html")
        if PAGE_KNOBS["page"] == "garbage":
            return Response(os.urandom(4096), mimetype="application/octet-stream")
        return login_step()

    @in_transaction()
    def login_step(tx_id):
        one_page = request.path == "/u/login"
        if request.method == "GET":
            return login_form(tx_id, one_page)
        username = request.form.get("username", "")
        TX[tx_id]["username"] = username
        if not one_page:
            return redirect(f"/u/login/password?state={tx_id}")
        message = check_password(tx_id, username, request.form.get("password", ""))
        if message:
            return login_form(tx_id, True, message)
        return after_password(tx_id)

    @app.route("/u/login/password", methods=["GET", "POST"])
    @in_transaction()
    def password(tx_id):
        if request.method == "GET":
            return password_form(tx_id)
        message = check_password(tx_id, TX[tx_id].get("username", ""), request.form.get("password", ""))
        if message:
            return password_form(tx_id, message)
        return after_password(tx_id)

    @app.route("/u/mfa-otp-challenge", methods=["GET", "POST"])
    @in_transaction(logged_in=True)
    def mfa(tx_id):
        if request.method == "GET":
            return otp_form(tx_id)
        now = time.time()
        code = request.form.get("code", "")
        if code not in {totp(S.TOTP_SECRET, now + d) for d in (-30, 0, 30)}:
            return otp_form(tx_id, "The code you entered is invalid")
        return after_mfa(tx_id)

    @app.route("/u/consent", methods=["GET", "POST"])
    @in_transaction(logged_in=True)
    def consent(tx_id):
        if request.method == "GET":
            return consent_form(tx_id)
        return finish(tx_id, deny=request.form.get("action") != "accept")

    @app.route("/_logins")
    def logins():
        return jsonify(LOGINS)
