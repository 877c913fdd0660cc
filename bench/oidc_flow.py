"""Browser-like walks through an OpenID provider's authorization flow, for bench/compare:
one cookie jar per browser, redirects followed by hand, the sign-in form filled in and the
consent form allowed. Works with Sluis' pages and with bench/oidc-provider's interactions.
Standard library only."""
import base64, hashlib, html, http.cookiejar, json, re, secrets, urllib.error, urllib.parse, urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Browser:
    def __init__(self, email, password):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)
        self.email, self.password = email, password

    def fetch(self, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            resp = self.opener.open(req, timeout=30)
            return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def cookie_header(self, url):
        """The Cookie header this browser would send to `url`."""
        req = urllib.request.Request(url)
        self.jar.add_cookie_header(req)
        return req.get_header("Cookie") or ""

    def authorize(self, authorize_url, params, redirect_uri, stop_at_form=False):
        """Walks from the authorization request to the redirect back to the client and returns
        its query parameters; with `stop_at_form`, stops at the sign-in form and returns
        (form action URL, hidden fields) instead."""
        url = authorize_url + "?" + urllib.parse.urlencode(params)
        for _ in range(12):
            status, headers, body = self.fetch(url)
            if status in (302, 303):
                url = urllib.parse.urljoin(url, headers["Location"])
                if url.startswith(redirect_uri):
                    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
                continue
            if status != 200:
                raise RuntimeError(f"GET {url}: {status} {body[:200]}")
            fields = dict((n, html.unescape(v)) for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', body))
            action = urllib.parse.urljoin(url, html.unescape(re.search(r'<form[^>]*action="([^"]+)"', body).group(1)))
            if 'name="password"' in body:
                if stop_at_form:
                    return action, fields
                fields.update(email=self.email, password=self.password)
            else:
                fields["decision"] = "allow"
            status, headers, body = self.fetch(action, urllib.parse.urlencode(fields).encode())
            if status not in (302, 303):
                raise RuntimeError(f"POST {action}: {status} {body[:300]}")
            url = urllib.parse.urljoin(action, headers["Location"])
            if url.startswith(redirect_uri):
                return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))
        raise RuntimeError(f"no redirect back to the client from {url}")

    def code(self, authorize_url, client_id, redirect_uri, scope, extra=None):
        """A fresh authorization code and its PKCE verifier."""
        verifier, challenge = pkce()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
                  "state": secrets.token_urlsafe(8), "code_challenge": challenge, "code_challenge_method": "S256", **(extra or {})}
        answer = self.authorize(authorize_url, params, redirect_uri)
        if "code" not in answer:
            raise RuntimeError(f"no code: {answer}")
        return answer["code"], verifier

    def token(self, token_url, client_id, secret, form):
        auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        status, _, body = self.fetch(token_url, urllib.parse.urlencode(form).encode(),
                                     {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise RuntimeError(f"token: {status} {body[:300]}")
        return json.loads(body)
