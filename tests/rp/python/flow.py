#!/usr/bin/env python3
"""A real relying party (Authlib) running the whole OpenID Connect life cycle
against a running Sluis: discovery, authorization code + PKCE, ID token
checks, userinfo, introspection, refresh rotation, revocation, RP-initiated
logout and "the session is really gone".

The script plays both roles: the RP (Authlib's OAuth2Session) and the user's
browser (a requests.Session that never follows redirects by itself and fills
in Sluis' login and consent forms).

Inputs (environment):
  RP_ISSUER                    e.g. http://127.0.0.1:8080 (plain http is allowed)
  RP_CLIENT_ID
  RP_CLIENT_SECRET             empty string = public client (auth method "none")
  RP_REDIRECT_URI
  RP_POST_LOGOUT_REDIRECT_URI
  RP_USER_EMAIL
  RP_USER_PASSWORD

Output: one JSON line {"ok": true, "sub": ...} on stdout and exit 0, or a
message on stderr, {"ok": false, "error": ...} on stdout and exit 1.

Run with the project's virtualenv: tests/rp/python/.venv/bin/python flow.py
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from ipaddress import ip_address
from typing import Callable
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

# authlib.jose warns at import time that it is deprecated in favour of
# joserfc. It still works and is what this RP is meant to exercise, so keep
# the warning out of the test output. (authlib.deprecate installs an
# "always" filter on import, so ours has to be added after it.)
import authlib.deprecate  # noqa: E402

warnings.filterwarnings("ignore", category=authlib.deprecate.AuthlibDeprecationWarning)

from authlib.integrations.requests_client import OAuth2Session, OAuthError  # noqa: E402
from authlib.jose import JsonWebKey, JsonWebToken  # noqa: E402
from authlib.jose.errors import JoseError  # noqa: E402
from authlib.oidc.core.util import create_half_hash  # noqa: E402

HTTP_TIMEOUT_S = 10
OVERALL_TIMEOUT_S = 90
MAX_BROWSER_STEPS = 15
CLOCK_SKEW_S = 60
SCOPE = "openid email profile"


class FlowError(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise FlowError(message)


def step(message: str) -> None:
    print(f"[rp-python] {message}", file=sys.stderr, flush=True)


# The flow stage in progress, so an error from deep inside Authlib or
# requests still says which part of the flow failed.
STAGE = "startup"


def begin(name: str) -> None:
    global STAGE
    STAGE = name


@dataclass(frozen=True)
class Env:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    email: str
    password: str

    @property
    def is_public(self) -> bool:
        return self.client_secret == ""

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"


def read_env() -> Env:
    values = {}
    for name in (
        "RP_ISSUER",
        "RP_CLIENT_ID",
        "RP_CLIENT_SECRET",
        "RP_REDIRECT_URI",
        "RP_POST_LOGOUT_REDIRECT_URI",
        "RP_USER_EMAIL",
        "RP_USER_PASSWORD",
    ):
        value = os.environ.get(name)
        # RP_CLIENT_SECRET may be empty (public client) but must be set, so a
        # forgotten variable is not silently treated as "public client".
        if value is None or (value == "" and name != "RP_CLIENT_SECRET"):
            raise FlowError(f"environment variable {name} is not set")
        values[name] = value
    return Env(
        issuer=values["RP_ISSUER"],
        client_id=values["RP_CLIENT_ID"],
        client_secret=values["RP_CLIENT_SECRET"],
        redirect_uri=values["RP_REDIRECT_URI"],
        post_logout_redirect_uri=values["RP_POST_LOGOUT_REDIRECT_URI"],
        email=values["RP_USER_EMAIL"],
        password=values["RP_USER_PASSWORD"],
    )


# ---------------------------------------------------------------------------
# Browser side: HTML forms, cookies, redirect following.
# ---------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    inputs: list[dict[str, str | None]] = field(default_factory=list)
    buttons: list[dict[str, str | None]] = field(default_factory=list)

    def has_input(self, name: str) -> bool:
        return any(i.get("name") == name for i in self.inputs)


class FirstFormParser(HTMLParser):
    """Collects the first <form> of a page with its <input>s and <button>s.
    HTMLParser already unescapes attribute values (&amp; etc.)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: Form | None = None
        self._in_form = False
        self._done = False
        self._text: list[str] = []
        self._skip_text = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "style"):
            self._skip_text += 1
        if self._done:
            return
        if tag == "form" and self.form is None:
            self.form = Form(
                action=attributes.get("action") or "",
                method=(attributes.get("method") or "get").upper(),
            )
            self._in_form = True
        elif self._in_form and tag == "input":
            self.form.inputs.append(attributes)
        elif self._in_form and tag == "button":
            self.form.buttons.append(attributes)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in ("script", "style"):
            self._skip_text -= 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip_text:
            self._skip_text -= 1
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True

    def handle_data(self, data):
        if not self._skip_text:
            self._text.append(data)

    @property
    def text(self) -> str:
        """Visible text of the page, to make failure messages useful."""
        return " ".join(" ".join(self._text).split())[:300]


@dataclass
class Page:
    url: str
    html: str
    form: Form | None
    text: str


def parse_page(url: str, html: str) -> Page:
    parser = FirstFormParser()
    parser.feed(html)
    parser.close()
    form = parser.form
    if form is not None:
        # A missing action means "submit to the page itself".
        form.action = urljoin(url, form.action)
    return Page(url=url, html=html, form=form, text=parser.text)


def fill_form(form: Form, email: str, password: str) -> list[tuple[str, str]]:
    """The body a user would submit: every named input (checkboxes/radios
    only when checked, submit inputs never), credentials filled in, and the
    button the user would click."""
    fields: list[tuple[str, str]] = []
    for attributes in form.inputs:
        name = attributes.get("name")
        kind = (attributes.get("type") or "text").lower()
        if not name or "disabled" in attributes:
            continue
        if kind in ("submit", "button", "image", "reset", "file"):
            continue
        if kind in ("checkbox", "radio") and "checked" not in attributes:
            continue
        value = attributes.get("value")
        if value is None:
            value = "on" if kind in ("checkbox", "radio") else ""
        if name == "email":
            value = email
        elif name == "password":
            value = password
        fields.append((name, value))
    # Consent: always allow. Other forms with named buttons (e.g. a logout
    # confirmation) get their first named button, normally the primary action.
    named = [b for b in form.buttons if b.get("name") and "disabled" not in b]
    allow = [b for b in named if b.get("name") == "decision" and b.get("value") == "allow"]
    chosen = (allow or named or [None])[0]
    if chosen is not None:
        fields.append((chosen["name"], chosen.get("value") or ""))
    return fields


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Outcome:
    """Where a navigation ended: a redirect to the stop prefix, or a page."""

    redirect: str | None = None
    page: Page | None = None


# A page handler returns (url, method, fields) to submit, or None to stop.
PageHandler = Callable[[Page], "tuple[str, str, list[tuple[str, str]]] | None"]


class Browser:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.session = requests.Session()
        self.session.headers["Accept"] = "text/html,application/xhtml+xml"

    def _request(self, method: str, url: str, fields) -> requests.Response:
        check(same_origin(url, self.origin), f"browser refused to leave the issuer origin: {url}")
        try:
            if method == "POST":
                response = self.session.post(url, data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT_S)
            else:
                response = self.session.get(url, params=fields, allow_redirects=False, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException as err:
            raise FlowError(f"{method} {url} failed: {err}") from err
        self._trust_loopback_secure_cookies()
        return response

    def _trust_loopback_secure_cookies(self) -> None:
        """Browsers treat http://localhost and 127.0.0.1 as secure contexts
        and send `Secure` cookies there; http.cookiejar only does so over
        https. Mirror the browsers so a Sluis that always sets Secure cookies
        works on a plain-http loopback test server. (A cookie policy would be
        cleaner, but requests copies cookies into a default-policy jar for
        every request.)"""
        for cookie in self.session.cookies:
            if cookie.secure and _is_loopback(cookie.domain):
                cookie.secure = False

    def navigate(self, start_url: str, stop_at: str, on_page: PageHandler) -> Outcome:
        """Follows redirects within the issuer origin and hands every HTML
        page to on_page; ends at a Location starting with stop_at, or at the
        page on_page declined to continue from."""
        url, method, fields = start_url, "GET", None
        for _ in range(MAX_BROWSER_STEPS):
            response = self._request(method, url, fields)
            if 300 <= response.status_code < 400:
                location = response.headers.get("Location")
                check(location, f"{response.status_code} from {url} without Location")
                target = urljoin(url, location)
                if target.startswith(stop_at):
                    return Outcome(redirect=target)
                check(same_origin(target, self.origin), f"unexpected redirect off the issuer to {target}")
                url, method, fields = target, "GET", None
                continue
            content_type = response.headers.get("Content-Type", "")
            page = parse_page(response.url, response.text)
            check(
                response.status_code == 200 and "text/html" in content_type,
                f"{method} {url} answered {response.status_code} {content_type}: {page.text}",
            )
            submission = on_page(page)
            if submission is None:
                return Outcome(page=page)
            url, method, fields = submission
        raise FlowError(f"no redirect to {stop_at} after {MAX_BROWSER_STEPS} browser steps")


def same_origin(url: str, origin: str) -> bool:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" == origin


def user_submitting_forms(env: Env) -> PageHandler:
    """A page handler acting like a user who logs in and consents. Seeing
    the login form a second time means the credentials were rejected."""
    login_submitted = False

    def on_page(page: Page):
        nonlocal login_submitted
        check(page.form is not None, f"page {page.url} has no form: {page.text}")
        if page.form.has_input("password"):
            check(not login_submitted, f"login rejected, login form shown again: {page.text}")
            login_submitted = True
        return page.form.action, page.form.method, fill_form(page.form, env.email, env.password)

    return on_page


# ---------------------------------------------------------------------------
# RP side.
# ---------------------------------------------------------------------------


def fetch_json(url: str, what: str) -> dict:
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})
    except requests.RequestException as err:
        raise FlowError(f"{what}: GET {url} failed: {err}") from err
    check(response.status_code == 200, f"{what}: GET {url} answered {response.status_code}")
    try:
        return response.json()
    except ValueError as err:
        raise FlowError(f"{what}: {url} did not return JSON") from err


def discover(env: Env) -> dict:
    begin("discovery")
    metadata = fetch_json(env.issuer.rstrip("/") + "/.well-known/openid-configuration", "openid-configuration")
    # OpenID Connect Discovery 4.3: the issuer must match exactly.
    check(metadata.get("issuer") == env.issuer, f"issuer {metadata.get('issuer')} != {env.issuer}")
    for endpoint in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "end_session_endpoint",
    ):
        check(metadata.get(endpoint), f"{endpoint} missing")
    check("S256" in metadata.get("code_challenge_methods_supported", []), "S256 PKCE not advertised")
    step(f"discovered {metadata['issuer']}")
    return metadata


def token_auth_method(env: Env, metadata: dict) -> str:
    if env.is_public:
        return "none"
    # Per OpenID Connect Discovery, a missing list means client_secret_basic.
    supported = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"


def make_rp(env: Env, metadata: dict) -> OAuth2Session:
    method = token_auth_method(env, metadata)
    step(f"client auth {method}")
    return OAuth2Session(
        client_id=env.client_id,
        client_secret=env.client_secret or None,
        scope=SCOPE,
        redirect_uri=env.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
        default_timeout=HTTP_TIMEOUT_S,
    )


@dataclass
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


def new_authorization_request(rp: OAuth2Session, metadata: dict) -> AuthorizationRequest:
    code_verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(
        metadata["authorization_endpoint"],
        state=secrets.token_urlsafe(16),
        code_verifier=code_verifier,
        nonce=nonce,
    )
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=code_verifier)


def jwt_for(metadata: dict) -> JsonWebToken:
    """A JWT decoder that only accepts the asymmetric algorithms the provider
    advertises for ID tokens (never HS*, never none)."""
    advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in advertised if a != "none" and not a.startswith("HS")]
    check(algorithms, f"discovery: no asymmetric ID token algorithm in {advertised}")
    return JsonWebToken(algorithms)


def decode_id_token(env: Env, metadata: dict, id_token: str, access_token: str, nonce: str | None):
    jwks = JsonWebKey.import_key_set(fetch_json(metadata["jwks_uri"], "jwks"))

    def at_hash_matches(claims, value):
        expected = create_half_hash(access_token, claims.header["alg"])
        return expected is not None and value == expected.decode()

    options = {
        "iss": {"essential": True, "value": metadata["issuer"]},
        "aud": {"essential": True, "value": env.client_id},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
    # at_hash is required from the code exchange; after a refresh it is
    # checked when present.
    if nonce is not None or "at_hash" in json.loads(_jwt_part(id_token, 1)):
        options["at_hash"] = {"essential": True, "validate": at_hash_matches}
    try:
        claims = jwt_for(metadata).decode(id_token, jwks, claims_options=options)
        claims.validate(leeway=CLOCK_SKEW_S)
    except JoseError as err:
        raise FlowError(f"ID token invalid: {err}") from err
    return claims


def _jwt_part(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def check_id_token(env: Env, metadata: dict, token: dict, request: AuthorizationRequest) -> dict:
    id_token = token.get("id_token")
    check(id_token, "token response has no id_token")
    claims = decode_id_token(env, metadata, id_token, token["access_token"], request.nonce)
    now = int(time.time())
    auth_time = claims.get("auth_time")
    check(isinstance(auth_time, int), "ID token: auth_time missing")
    check(auth_time <= now + CLOCK_SKEW_S, "ID token: auth_time in the future")
    check(auth_time >= now - 3600, "ID token: auth_time too old for a fresh login")
    amr = claims.get("amr")
    check(
        isinstance(amr, list) and amr and all(isinstance(v, str) for v in amr),
        f"ID token: amr {amr!r} is not a non-empty string array",
    )
    check(isinstance(claims.get("sid"), str) and claims["sid"], "ID token: sid missing")
    step(f"ID token ok: sub={claims['sub']} amr={','.join(amr)}")
    return dict(claims)


def check_authorization_response(env: Env, metadata: dict, callback: str) -> None:
    """Turn an error response into a clear failure (Authlib would otherwise
    guess a grant type) and check the RFC 9207 iss parameter if sent."""
    query = parse_qs(urlsplit(callback).query)
    if "error" in query:
        description = query.get("error_description", [""])[0]
        raise FlowError(f"authorization error {query['error'][0]}: {description}")
    check("code" in query, f"authorization response has no code: {callback}")
    if "iss" in query:
        check(query["iss"][0] == metadata["issuer"], f"authorization response iss {query['iss'][0]} mismatch")


def login(env: Env, metadata: dict, rp: OAuth2Session, browser: Browser) -> tuple[dict, dict]:
    begin("login")
    request = new_authorization_request(rp, metadata)
    outcome = browser.navigate(request.url, env.redirect_uri, user_submitting_forms(env))
    step(f"authorization response: {outcome.redirect.split('?')[0]}")
    check_authorization_response(env, metadata, outcome.redirect)
    begin("code exchange")
    # Authlib checks `state` against the callback and sends the verifier.
    token = rp.fetch_token(
        metadata["token_endpoint"],
        authorization_response=outcome.redirect,
        state=request.state,
        code_verifier=request.code_verifier,
    )
    check(token.get("access_token"), "token response has no access_token")
    check(token.get("refresh_token"), "token response has no refresh_token")
    claims = check_id_token(env, metadata, token, request)
    return dict(token), claims


def check_userinfo(env: Env, metadata: dict, rp: OAuth2Session, sub: str) -> None:
    begin("userinfo")
    # rp.token is the token just obtained; OAuth2Session sends it as Bearer.
    response = rp.get(metadata["userinfo_endpoint"])
    check(response.status_code == 200, f"userinfo answered {response.status_code}: {response.text[:200]}")
    userinfo = response.json()
    check(userinfo.get("sub") == sub, f"userinfo sub {userinfo.get('sub')} != {sub}")
    check(userinfo.get("email") == env.email, f"userinfo email {userinfo.get('email')} != {env.email}")
    step("userinfo ok")


def check_introspection(env: Env, metadata: dict, rp: OAuth2Session, token: dict, sub: str) -> None:
    begin("introspection")
    if env.is_public:
        step("introspection skipped (public client)")
        return
    endpoint = metadata.get("introspection_endpoint")
    check(endpoint, "discovery: introspection_endpoint missing")
    response = rp.introspect_token(endpoint, token=token["access_token"], token_type_hint="access_token")
    check(response.status_code == 200, f"introspection answered {response.status_code}")
    result = response.json()
    check(result.get("active") is True, f"introspection: access token not active: {result}")
    if "sub" in result:
        check(result["sub"] == sub, "introspection: sub mismatch")
    if "client_id" in result:
        check(result["client_id"] == env.client_id, "introspection: client_id mismatch")
    step("introspection ok")


def check_refresh_and_revocation(env: Env, metadata: dict, rp: OAuth2Session, token: dict, sub: str) -> None:
    """Refresh rotates the refresh token; the rotated one is then revoked and
    must no longer be accepted."""
    begin("refresh")
    old_refresh = token["refresh_token"]
    # Authlib copies the old refresh token into the result when the response
    # has none, so "not rotated" shows up as equal tokens below.
    refreshed = dict(rp.refresh_token(metadata["token_endpoint"], refresh_token=old_refresh))
    check(refreshed.get("access_token"), "refresh: no access_token")
    check(refreshed.get("refresh_token") != old_refresh, "refresh: refresh token was not rotated")
    if refreshed.get("id_token"):
        # OIDC Core 12.2: same iss/sub/aud; nonce need not be repeated.
        claims = decode_id_token(env, metadata, refreshed["id_token"], refreshed["access_token"], None)
        check(claims["sub"] == sub, "refresh: ID token sub changed")
    step("refresh ok (rotated)")

    begin("revocation")
    new_refresh = refreshed["refresh_token"]
    response = rp.revoke_token(metadata["revocation_endpoint"], token=new_refresh, token_type_hint="refresh_token")
    check(response.status_code == 200, f"revocation answered {response.status_code}: {response.text[:200]}")
    try:
        rp.refresh_token(metadata["token_endpoint"], refresh_token=new_refresh)
    except OAuthError as err:
        check(err.error == "invalid_grant", f"refresh with revoked token: expected invalid_grant, got {err.error}")
        step("revocation ok (revoked refresh token rejected with invalid_grant)")
        return
    except requests.HTTPError as err:
        raise FlowError(f"refresh with revoked token: expected invalid_grant, got {err}") from err
    raise FlowError("refresh with a revoked refresh token succeeded")


def logout(env: Env, metadata: dict, browser: Browser, id_token: str) -> None:
    begin("logout")
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": env.post_logout_redirect_uri,
            "state": state,
        }
    )
    endpoint = metadata["end_session_endpoint"]
    url = f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
    # A confirmation page, if any, is submitted like a user clicking "log out".
    outcome = browser.navigate(url, env.post_logout_redirect_uri, user_submitting_forms(env))
    echoed = parse_qs(urlsplit(outcome.redirect).query).get("state", [None])[0]
    check(echoed == state, f"logout: state not echoed (got {echoed})")
    step("logout ok")


def check_logged_out(env: Env, metadata: dict, rp: OAuth2Session, browser: Browser) -> None:
    begin("login-after-logout")
    request = new_authorization_request(rp, metadata)
    outcome = browser.navigate(request.url, env.redirect_uri, lambda page: None)
    check(outcome.redirect is None, f"still logged in after logout: redirected to {outcome.redirect}")
    page = outcome.page
    check(
        page.form is not None and page.form.has_input("password"),
        f"after logout expected the login page, got: {page.text}",
    )
    step("session gone: login required again")


def run() -> dict:
    env = read_env()
    metadata = discover(env)
    rp = make_rp(env, metadata)
    browser = Browser(env.origin)

    token, claims = login(env, metadata, rp, browser)
    check_userinfo(env, metadata, rp, claims["sub"])
    check_introspection(env, metadata, rp, token, claims["sub"])
    check_refresh_and_revocation(env, metadata, rp, token, claims["sub"])
    logout(env, metadata, browser, token["id_token"])
    check_logged_out(env, metadata, rp, browser)
    return {"ok": True, "sub": claims["sub"]}


def on_timeout(signum, frame):
    raise FlowError(f"timed out after {OVERALL_TIMEOUT_S} s")


def main() -> int:
    # A hung server must not hang the test that runs this script.
    signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(OVERALL_TIMEOUT_S)
    try:
        result = run()
    except FlowError as err:
        message = str(err)
    except OAuthError as err:
        message = f"OAuth error {err.error}" + (f": {err.description}" if err.description else "")
    except Exception as err:  # anything unexpected still ends in the contract
        message = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    else:
        # Same compact form as the Node RP, so both outputs compare equal.
        print(json.dumps(result, separators=(",", ":")), flush=True)
        return 0
    message = f"{STAGE}: {message}"
    print(f"[rp-python] FAIL: {message}", file=sys.stderr, flush=True)
    print(json.dumps({"ok": False, "error": message}, separators=(",", ":")), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
