#!/usr/bin/env python3
"""Grant-review benchmark: seeds a SQLite database with USERS users, CLIENTS clients and
about three linked clients per user (each with up to three granted scopes), then times the
admin grant-review JSON API (the same queries as /admin/grants) through a running Sluis.

    bench/grants.py [USERS=100000] [CLIENTS=1000]

Uses the release build (cargo build --release) and the standard library only.
"""
import random, sqlite3, sys, time

from admin_bench import Instance

USERS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
random.seed(7)

sluis = Instance("sluis-grants-")
t0 = time.time()
db = sqlite3.connect(sluis.database)
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

sluis.serve()
try:
    print()
    print(f"| view | median ms | max ms | rows |")
    print(f"|---|---:|---:|---:|")
    for name, path in [
        ("per user (?user=)", "/api/admin/grants?user=user4242@example.com"),
        ("clients holding a scope (?scope=email), page 1", "/api/admin/grants?scope=email"),
        ("clients holding a scope, page 10", "/api/admin/grants?scope=email&page=10"),
        ("all clients with counts, page 1", "/api/admin/grants"),
    ]:
        median, worst, body = sluis.timed(path, 50)
        count = len(body.get("grants", body.get("clients", [])))
        print(f"| {name} | {median:.1f} | {worst:.1f} | {count} |")
finally:
    sluis.stop()
