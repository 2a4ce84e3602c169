"""What the fraud tools cost: signatures/s with the screen on (10,000 blocks) and off, and an invalidation.

Run: ``python -m bench.fraud [signatures] [invalidated]`` from the
repository root (defaults 4,000 and 100,000).  One in-process server on a
fresh SQLite file (the default inline database work, so the loop-lag probe
sees every batch):

1. the screen's own cost per call with 5,000 CIDR networks and 5,000
   domains blocked;
2. account signatures over HTTP (eight concurrent clients, each signer from
   an address of its own, ``--xheaders``), in alternating rounds with the
   screen on and off, same run; the best round of each is reported;
3. an invalidation of ``invalidated`` validated signatures (inserted
   directly), through ``POST /api/admin/invalidations``: time to completed,
   and the longest loop stall meanwhile, from a probe that sleeps 1 ms and
   measures how late it wakes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import random
import sys
import tempfile
import time

import tornado.httpclient
import tornado.netutil

from tornado_petitions import accounts, petition_store, statements
from tornado_petitions.models import Signature, User, database_proxy, utcnow
from tornado_petitions.server import make_app, make_server
from tornado_petitions.settings import RateLimits, Settings

CLIENTS = 8
ROUNDS = 3


def blocks(count: int) -> list[tuple[str, str]]:
    """``count`` blocks, half CIDRs (IPv4 /16 to /32 and IPv6 /32 to /64, in the 10/8 and fd00::/8 ranges), half domains."""
    rng = random.Random(7)
    found: list[tuple[str, str]] = []
    for i in range(count // 2):
        if i % 4:
            length = rng.randint(16, 32)
            address = ipaddress.IPv4Address((10 << 24) | rng.getrandbits(24))
        else:
            length = rng.randint(32, 64)
            address = ipaddress.IPv6Address((0xFD << 120) | rng.getrandbits(120))
        found.append(("address", str(ipaddress.ip_network(f"{address}/{length}", strict=False))))
    found += [("domain", f"spam{i}.example") for i in range(count - count // 2)]
    return found


def screen_cost(app, calls: int = 200_000) -> float:
    """µs per ``screen`` call for signers outside every block."""
    screen = app.screen
    addresses = [f"192.0.2.{i % 250}" for i in range(1000)]
    started = time.perf_counter()
    for i in range(calls):
        screen.screen(i % 50, addresses[i % 1000], f"p{i}@example.org", "example.org")
    return (time.perf_counter() - started) * 1e6 / calls


async def sign_round(client, base: str, pid: int, tokens: list[str]) -> float:
    """Signatures/s of ``tokens`` signing petition ``pid`` through ``CLIENTS`` concurrent clients."""
    queue = list(enumerate(tokens))

    async def worker() -> None:
        while queue:
            i, token = queue.pop()
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"192.0.{i // 250}.{i % 250}"}
            response = await client.fetch(
                f"{base}/api/petitions/{pid}/signatures", method="POST", body=b"", headers=headers
            )
            assert response.code == 201

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return len(tokens) / (time.perf_counter() - started)


def seed_signatures(pid: int, total: int) -> None:
    """``total`` validated signatures of ``pid``, written directly, and the count that goes with them."""
    db = database_proxy.obj
    now = utcnow()
    rows = [
        (pid, "validated", f"s{i}@bulk.example", "bulk.example", "203.0.113.9", "GB", now, now)
        for i in range(total)
    ]
    with db.atomic():
        db.cursor().executemany(
            'INSERT INTO "signature" ("petition_id", "state", "email", "email_domain", "address", "country",'
            ' "created_at", "validated_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            rows,
        )
        counts = json.dumps({"GB": total})
        statements.execute(
            'UPDATE "petition" SET "signature_count" = "signature_count" + ?, "country_counts" = ? WHERE "id" = ?',
            (total, counts, pid),
        )


class LagProbe:
    """Sleeps 1 ms again and again and keeps how late each wake-up was: the loop's stalls."""

    def __init__(self) -> None:
        self.stalls = [0.0]
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.stalls = [0.0]
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.stalls.append(loop.time() - before - 0.001)

    async def stop(self) -> tuple[float, float]:
        """The longest and the 99th-percentile stall, in ms."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        ordered = sorted(self.stalls)
        return ordered[-1] * 1000, ordered[int(len(ordered) * 0.99)] * 1000


async def idle_lag(seconds: float) -> tuple[float, float]:
    """The probe on an idle server: what the shared machine's scheduling alone costs the loop."""
    probe = LagProbe()
    probe.start()
    await asyncio.sleep(seconds)
    return await probe.stop()


def batch_times(pid: int, total: int) -> list[float]:
    """ms of each ``run_batch`` invalidating ``total`` signatures of ``pid``, called directly (no server)."""
    from tornado_petitions import audit, invalidations

    identity = accounts.identify(accounts.hash_token(accounts.issue_token(User.get(), 3600)))
    author = audit.Actor(identity, "127.0.0.1")
    conditions = invalidations.Conditions(petition_id=pid)
    newest = invalidations.newest_signature_id()
    run = invalidations.create(author, conditions, invalidations.count_matching(conditions, newest), newest)
    times = []
    finished = False
    while not finished:
        started = time.perf_counter()
        _, finished = invalidations.run_batch(run["invalidation_id"])
        times.append((time.perf_counter() - started) * 1000)
    return times


async def invalidation_run(api, admin_token: str, pid: int) -> tuple[float, tuple[float, float]]:
    """Seconds to invalidate every signature of ``pid`` and the loop's stalls (ms: longest, p99) meanwhile."""
    probe = LagProbe()
    probe.start()
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    answer = await api("POST", "/api/admin/invalidations", {"petition_id": pid}, admin_token)
    run_id = answer["invalidation_id"]
    while (await api("GET", f"/api/admin/invalidations/{run_id}", None, admin_token))["state"] == "running":
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    return elapsed, await probe.stop()


async def main(signatures: int = 4_000, invalidated: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as directory:
        rates = dataclasses.replace(RateLimits(), signatures_per_user=10**6)
        settings = Settings(
            db_url=f"sqlite:///{directory}/bench.db", xheaders=True, rate_limits=rates, xsrf_cookies=False
        )
        app = make_app(settings)
        await app.start()
        [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = make_server(app)
        server.add_sockets([sock])
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        client = tornado.httpclient.AsyncHTTPClient(max_clients=CLIENTS)

        async def api(method: str, path: str, body, token: str):
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            response = await client.fetch(base + path, method=method, body=data, headers=headers)
            return json.loads(response.body)

        with database_proxy.obj.connection_context():
            admin = accounts.create_user("admin@example.org", "Admin", "x", "admin")
            admin_token = accounts.issue_token(admin, 3600)
            author = accounts.identify(accounts.hash_token(admin_token))
            password = accounts.hash_password("signer password")
            with database_proxy.obj.atomic():
                users = [
                    accounts.create_user(f"s{i}@example.org", "S", password)
                    for i in range(signatures * 2 * ROUNDS)
                ]
                tokens = [accounts.issue_token(user, 3600) for user in users]
            app.screen.blocklist.replace(blocks(10_000))
        print(f"screen with 10,000 blocks: {screen_cost(app):.2f} µs per signature attempt")
        if not signatures:
            rounds_left = 0
        else:
            rounds_left = ROUNDS * 2
        app.screen.per_address = 10**9  # measure the checks, not the quiet limit's fraudulent rows
        rates_by_mode: dict[bool, list[float]] = {True: [], False: []}
        chunk = signatures
        for round_number in range(rounds_left):
            enabled = round_number % 2 == 0
            app.screen.enabled = enabled
            with database_proxy.obj.connection_context():
                petition, _ = petition_store.create_petition(
                    author, f"Round {round_number}", "Text", None, None, 180.0
                )
            mine = tokens[round_number * chunk : (round_number + 1) * chunk]
            rates_by_mode[enabled].append(await sign_round(client, base, petition["petition_id"], mine))
        if rounds_left:
            on, off = max(rates_by_mode[True]), max(rates_by_mode[False])
            print(
                f"signatures/s over HTTP ({CLIENTS} clients, best of {ROUNDS} rounds of {chunk}): "
                f"screen on {on:.0f}, off {off:.0f}, ratio {on / off:.3f}"
            )
            print("  rounds on:", ", ".join(f"{r:.0f}" for r in rates_by_mode[True]))
            print("  rounds off:", ", ".join(f"{r:.0f}" for r in rates_by_mode[False]))

        with database_proxy.obj.connection_context():
            victim, _ = petition_store.create_petition(author, "Invalidated", "Text", None, None, 180.0)
            seed_signatures(victim["petition_id"], invalidated)
        idle = await idle_lag(5.0)
        elapsed, stall = await invalidation_run(api, admin_token, victim["petition_id"])
        with database_proxy.obj.connection_context():
            left = petition_store.get_petition(victim["petition_id"])["signature_count"]
            changed = (
                Signature.select()
                .where((Signature.petition == victim["petition_id"]) & (Signature.state == "invalidated"))
                .count()
            )
        assert left == 0 and changed == invalidated, (left, changed)
        print(
            f"invalidation of {invalidated} signatures in batches of {settings.invalidation_batch}: "
            f"{elapsed:.2f} s ({invalidated / elapsed:.0f}/s); loop stalls meanwhile: longest {stall[0]:.1f} ms,"
            f" p99 {stall[1]:.1f} ms (idle server, 5 s: longest {idle[0]:.1f} ms, p99 {idle[1]:.1f} ms)"
        )
        with database_proxy.obj.connection_context():
            direct, _ = petition_store.create_petition(author, "Direct", "Text", None, None, 180.0)
            seed_signatures(direct["petition_id"], 20_000)
            times = sorted(batch_times(direct["petition_id"], 20_000))
        print(
            f"run_batch called directly, {len(times)} batches of 20,000 signatures: "
            f"median {times[len(times) // 2]:.1f} ms, longest {times[-1]:.1f} ms"
        )
        client.close()
        server.stop()
        await app.shutdown()


if __name__ == "__main__":
    asyncio.run(main(*(int(arg) for arg in sys.argv[1:])))
