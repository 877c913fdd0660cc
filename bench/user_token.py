#!/usr/bin/env python3
"""Prints an access token for a user, by walking Sluis' login and consent pages with the
standard library only (cookie jar, no redirects followed automatically)."""
import base64, hashlib, html, http.cookiejar, json, os, re, secrets, sys, urllib.parse, urllib.request

issuer, client_id, secret, redirect_uri, email, password = sys.argv[1:7]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)


def fetch(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        resp = opener.open(req, timeout=10)
        return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
url = issuer + "/authorize?" + urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "openid email profile",
    "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
for _ in range(10):
    status, headers, body = fetch(url)
    if status in (302, 303):
        url = urllib.parse.urljoin(url, headers["Location"])
        if url.startswith(redirect_uri):
            break
        continue
    fields = dict((n, html.unescape(v)) for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', body))
    action = re.search(r'<form[^>]*action="([^"]+)"', body).group(1)
    if 'name="password"' in body:
        fields.update(email=email, password=password)
    else:
        fields["decision"] = "allow"
    status, headers, body = fetch(urllib.parse.urljoin(url, action), urllib.parse.urlencode(fields).encode())
    url = urllib.parse.urljoin(url, headers["Location"])
    if url.startswith(redirect_uri):
        break
code = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["code"][0]
auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
status, _, body = fetch(issuer + "/token", urllib.parse.urlencode({
    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}).encode(),
    {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
print(json.loads(body)["access_token"])
