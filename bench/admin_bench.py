"""Shared by the admin benchmarks (grants.py, logins.py): a release Sluis in a temporary
directory with an administrator, started after seeding, and an admin session to time
requests with. Standard library only."""
import http.cookiejar, json, os, re, socket, statistics, subprocess, tempfile, time, urllib.error, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sluis")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "bench admin password"


class Instance:
    """A built, migrated Sluis with one admin; seed `database` before `serve()`."""

    def __init__(self, prefix):
        self.work = tempfile.mkdtemp(prefix=prefix)
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        self.base = f"http://127.0.0.1:{port}"
        # The benchmark admin has no second factor, and all load comes from one address.
        self.env = dict(os.environ, SLUIS_DATA_DIR=os.path.join(self.work, "data"), SLUIS_LISTEN=f"127.0.0.1:{port}",
                        SLUIS_ISSUER=self.base, SLUIS_REQUIRE_2FA_FOR_ADMINS="false", SLUIS_RATE_LIMIT_LOGIN_PER_MINUTE="0",
                        RUST_LOG="warn")
        self.database = os.path.join(self.work, "data", "sluis.db")
        self.server = None
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        subprocess.run([BIN, "user", "create", "--email", ADMIN_EMAIL, "--admin", "--password-stdin"],
                       input=(ADMIN_PASSWORD + "\n").encode(), env=self.env, cwd=self.work, check=True, stdout=subprocess.DEVNULL)

    def serve(self):
        """Starts the server, waits until it answers, and signs the admin in."""
        self.server = subprocess.Popen([BIN, "serve"], env=self.env, cwd=self.work, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)
        page = self.opener.open(self.base + "/login").read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf_token": csrf, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
        try:
            self.opener.open(self.base + "/login", form)
        except urllib.error.HTTPError as e:
            assert e.code == 303, e.code

    def get(self, path):
        return self.opener.open(self.base + path).read()

    def timed(self, path, n):
        """Median and worst milliseconds of `n` GETs of `path`, and the last JSON body."""
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            body = self.get(path)
            samples.append((time.perf_counter() - t) * 1000)
        return statistics.median(samples), max(samples), json.loads(body)

    def stop(self, keep=False):
        if self.server:
            self.server.terminate()
            self.server.wait()
        if not keep:
            subprocess.run(["rm", "-rf", self.work])
