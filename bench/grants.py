#!/usr/bin/env python3
"""Grant-review benchmark: seeds a SQLite database with USERS users, CLIENTS clients and
about three linked clients per user (each with up to three granted scopes), then times the
admin grant-review JSON API (the same queries as /admin/grants) through a running Sluis.

    bench/grants.py [USERS=100000] [CLIENTS=1000]

Uses the release build (cargo build --release) and the standard library only.
"""
import http.cookiejar, json, os, random, re, socket, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request

USERS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sluis")
random.seed(7)

work = tempfile.mkdtemp(prefix="sluis-grants-")
port = socket.socket(); port.bind(("127.0.0.1", 0)); PORT = port.getsockname()[1]; port.close()
env = dict(os.environ, SLUIS_DATA_DIR=os.path.join(work, "data"), SLUIS_LISTEN=f"127.0.0.1:{PORT}",
           SLUIS_ISSUER=f"http://127.0.0.1:{PORT}", RUST_LOG="warn")
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
subprocess.run([BIN, "user", "create", "--email", "admin@example.com", "--admin", "--password-stdin"],
               input=b"bench admin password\n", env=env, cwd=work, check=True, stdout=subprocess.DEVNULL)

t0 = time.time()
db = sqlite3.connect(os.path.join(work, "data", "sluis.db"))
now = int(time.time())
db.executemany("INSERT INTO clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, scopes, grant_types, signing_alg, created_at, status) "
               "VALUES (?, ?, NULL, 'https://c.example/cb', '', 'email openid profile', 'authorization_code', 'RS256', ?, 'verified')",
               [(f"client{c}", f"Client {c}", now - c) for c in range(CLIENTS)])
db.executemany("INSERT INTO users (id, email, email_norm, name, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?)",
               [(f"user{u}", f"user{u}@example.com", f"user{u}@example.com", now, now) for u in range(USERS)])
rows = []
for u in range(USERS):
    for c in random.sample(range(CLIENTS), 3):
        for scope in random.sample(["openid", "email", "profile"], random.randint(1, 3)):
            rows.append((f"user{u}", f"client{c}", scope, now - random.randint(0, 86400 * 365)))
db.executemany("INSERT OR IGNORE INTO granted_scopes (user_id, client_id, scope, granted_at) VALUES (?, ?, ?, ?)", rows)
db.commit()
db.execute("ANALYZE")
db.close()
print(f"seeded {USERS} users, {CLIENTS} clients, {len(rows)} granted scopes in {time.time() - t0:.1f}s")

server = subprocess.Popen([BIN, "serve"], env=env, cwd=work, stderr=subprocess.DEVNULL)
try:
    base = f"http://127.0.0.1:{PORT}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1); break
        except OSError:
            time.sleep(0.1)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)
    page = opener.open(base + "/login").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": csrf, "email": "admin@example.com", "password": "bench admin password"}).encode()
    try:
        opener.open(base + "/login", form)
    except urllib.error.HTTPError as e:
        assert e.code == 303, e.code

    def timed(path, n=50):
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            body = opener.open(base + path).read()
            samples.append((time.perf_counter() - t) * 1000)
        return statistics.median(samples), max(samples), json.loads(body)

    print()
    print(f"| view | median ms | max ms | rows |")
    print(f"|---|---:|---:|---:|")
    for name, path in [
        ("per user (?user=)", "/api/admin/grants?user=user4242@example.com"),
        ("clients holding a scope (?scope=email), page 1", "/api/admin/grants?scope=email"),
        ("clients holding a scope, page 10", "/api/admin/grants?scope=email&page=10"),
        ("all clients with counts, page 1", "/api/admin/grants"),
    ]:
        median, worst, body = timed(path)
        count = len(body.get("grants", body.get("clients", [])))
        print(f"| {name} | {median:.1f} | {worst:.1f} | {count} |")
finally:
    server.terminate()
    server.wait()
