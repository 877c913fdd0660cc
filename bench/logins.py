#!/usr/bin/env python3
"""Sign-in log benchmark: seeds a SQLite database with EVENTS sign-in attempts (default 10
million, spread over 90 days, from USERS users, 300 clients and about 250,000 addresses, a
tenth of them IPv6), then times the admin log's JSON API (/api/admin/logins, the same
queries as the /admin/logins page) through a running Sluis, one filter at a time, and the
CSV export of one day.

    bench/logins.py [EVENTS=10000000] [USERS=100000]

Uses the release build (cargo build --release) and the standard library only. The
database's indexes are dropped while seeding and rebuilt from the migration's own
definitions, so what is measured is the schema Sluis creates.
"""
import ipaddress, json, os, random, sqlite3, sys, time

from admin_bench import Instance

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
USERS = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
CLIENTS = 300
DAY = 86_400
random.seed(11)

sluis = Instance("sluis-logins-")

AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Computer", "Windows 10", "Chrome 126"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Computer", "Linux", "Firefox 128"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Computer", "macOS 10.15.7", "Safari 17"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Phone", "iOS 17.4", "Safari 17"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Phone", "Android 14", "Chrome 126"),
]
REASONS = ["wrong_password"] * 8 + ["unknown_account", "locked", "throttled"]

def ip_key(addr):
    return ("4%08x" if addr.version == 4 else "6%032x") % int(addr)

def truncate(addr):
    bits = 24 if addr.version == 4 else 48
    return ipaddress.ip_network(f"{addr}/{bits}", strict=False).network_address

# About 250,000 addresses: IPv4 in /24s of 50 hosts, a tenth IPv6.
ADDRESSES = []
for n in range(5_000):
    net = random.getrandbits(24) << 8
    ADDRESSES.extend(ipaddress.IPv4Address(net | h) for h in random.sample(range(1, 255), 45))
for n in range(25_000):
    ADDRESSES.append(ipaddress.IPv6Address((0x2001_0db8 << 96) | random.getrandbits(96)))

t0 = time.time()
db = sqlite3.connect(sluis.database)
db.execute("PRAGMA synchronous = OFF")
db.execute("PRAGMA cache_size = -1000000")
indexes = [sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'login_events' AND sql IS NOT NULL")]
for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'login_events' AND sql IS NOT NULL").fetchall():
    db.execute(f"DROP INDEX {name}")
now = int(time.time())
db.executemany("INSERT INTO users (id, email, email_norm, name, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?)",
               [(f"user{u}", f"user{u}@example.com", f"user{u}@example.com", now, now) for u in range(USERS)])

def rows():
    rnd = random.random
    for i in range(EVENTS):
        at = now - int(rnd() * 90 * DAY)
        user = int(random.paretovariate(1.2)) % USERS
        addr = ADDRESSES[(user * 7919 + (i % 3)) % len(ADDRESSES)] if rnd() < 0.97 else random.choice(ADDRESSES)
        old = at < now - 30 * DAY
        if old:
            addr = truncate(addr)
        ua, device, os_, browser = AGENTS[user % len(AGENTS)]
        client = f"client{user % CLIENTS}" if rnd() < 0.6 else None
        if rnd() < 0.9:
            result, reason, user_id = "success", None, f"user{user}"
        else:
            reason = random.choice(REASONS)
            result, user_id = "failure", (None if reason == "unknown_account" else f"user{user}")
        yield (f"{i:010x}{random.getrandbits(32):08x}", at, user_id, client, "password", result, reason,
               str(addr), ip_key(addr), 1 if old else 0, ua, device, os_, browser)

BATCH = 200_000
it = rows()
while True:
    batch = [r for _, r in zip(range(BATCH), it)]
    if not batch:
        break
    db.executemany("INSERT INTO login_events (id, at, user_id, client_id, method, result, reason, ip, ip_key, ip_truncated, user_agent, device, os, browser) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
db.commit()
t1 = time.time()
for sql in indexes:
    db.execute(sql)
db.commit()
db.execute("ANALYZE")
db.close()
size = os.path.getsize(sluis.database) / 2**30
print(f"seeded {EVENTS} events ({USERS} users) in {t1 - t0:.0f} s, indexes in {time.time() - t1:.0f} s; database {size:.1f} GiB")

sluis.serve()
try:
    # A cursor half-way down the unfiltered list, as "Older" links reach it.
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 45 * DAY))
    middle = json.loads(sluis.get(f"/api/admin/logins?limit=1&to={day}"))["events"][0]
    deep = f"{middle['at']}.{middle['id']}"
    sample_ip = ADDRESSES[(42 * 7919) % len(ADDRESSES)]
    # The network of a busy address (user42's), so the prefixes match many rows.
    prefix24 = ".".join(str(sample_ip).split(".")[:3]) + "."
    prefix16 = ".".join(str(sample_ip).split(".")[:2]) + "."
    print()
    print("| filter | median ms | max ms | rows |")
    print("|---|---:|---:|---:|")
    for name, path in [
        ("none, newest page", "/api/admin/logins"),
        ("none, a page 45 days down (`before=`)", f"/api/admin/logins?before={deep}"),
        ("user (`user=user42@example.com`)", "/api/admin/logins?user=user42@example.com"),
        ("user, a rare one (`user=user99999@…`)", f"/api/admin/logins?user=user{USERS - 1}@example.com"),
        ("IP address", f"/api/admin/logins?ip={sample_ip}"),
        ("IP prefix /24 (`ip=a.b.c.`)", f"/api/admin/logins?ip={prefix24}"),
        ("IP prefix /16 (`ip=a.b.`)", f"/api/admin/logins?ip={prefix16}"),
        ("IPv6 /32 (`ip=2001:db8:`)", "/api/admin/logins?ip=2001:db8:"),
        ("client", "/api/admin/logins?client=client7"),
        ("result (`result=failure`)", "/api/admin/logins?result=failure"),
        ("time range (one day)", f"/api/admin/logins?from={day}&to={day}"),
        ("user + result", "/api/admin/logins?user=user42@example.com&result=failure"),
        ("client + result + time range", f"/api/admin/logins?client=client7&result=failure&from={day}"),
    ]:
        median, worst, body = sluis.timed(path, 30)
        print(f"| {name} | {median:.1f} | {worst:.1f} | {len(body['events'])} |")

    t = time.perf_counter()
    csv = sluis.get(f"/admin/logins.csv?from={day}&to={day}")
    took = time.perf_counter() - t
    lines = csv.count(b"\n") - 1
    print(f"\nCSV export of one day: {lines} rows, {len(csv) / 2**20:.1f} MiB in {took:.2f} s ({lines / took:,.0f} rows/s)")
finally:
    sluis.stop(keep=os.environ.get("KEEP") is not None)
