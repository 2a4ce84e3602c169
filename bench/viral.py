"""The viral petition: W watchers, a signing storm with a status change in the middle, and resume cost.

One petition; W anonymous sockets on ``/ws/petitions`` (spread over client
processes), 100 on its author's channel and 10 admins on ``/ws/admin``;
32 clients sign it as fast as they can, each request as a different user
(made beforehand by ``bench.viral_seed``: registering would cost a password
hash each). Half-way through, an admin moves it ``submitted ->
under_review``. The seed has no signatures endpoint and no admin channel:
it holds the same watchers and delivers the same status change, idle.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime
import itertools
import math
import time
from pathlib import Path

import ujson

from .http_client import HttpConnection, closed_loop
from .scenarios import (
    SOCKETS_PER_PROCESS,
    ClientProcesses,
    _load_figures,
    create_request,
    fanout,
    percentile,
    profiled,
)
from .targets import BroadcastServer, OurServer, SeedServer, Server
from .viral_resume import resume_cost
from .viral_server import Accounts, ViralServer, public_path, seed_template

AUTHOR_SOCKETS = 100
PUBLIC_PROBES = 40  # public watchers whose every counts frame is recorded, for the staleness
USER_PROBE_EVERY = 10  # and every 10th of the author's sockets
STATUS_TARGET = "under_review"


class WatcherGroup(ClientProcesses):
    """Client processes holding the public watchers (1,250 a process) and one holding the rest."""

    def __init__(
        self, server: Server, petition: int, interval: float, public: tuple, others: list[tuple]
    ) -> None:
        self.server, self.petition, self.interval = server, petition, interval
        count, every, greetings, path = public
        processes = math.ceil(count / SOCKETS_PER_PROCESS)
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        self.specs = [[("public", share, every, greetings, path)] for share in shares if share]
        if others:
            self.specs.append(others)
        self.processes: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> WatcherGroup:
        argv = []
        for spec in self.specs:
            args = ["--port", str(self.server.port), "--petition", str(self.petition)]
            args += ["--interval", str(self.interval), "--marker", f'"{STATUS_TARGET}"']
            for kind, count, every, greetings, path in spec:
                args += ["--group", kind, str(count), str(every), str(greetings), path]
            argv.append(args)
        await self._spawn("bench.viral_client", argv, ready_timeout=300)
        return self

    async def _ask(self, command: bytes) -> list[dict]:
        for process in self.processes:
            process.stdin.write(command)
            await process.stdin.drain()
        return [await self._line(p, 120) for p in self.processes]

    async def mark(self) -> dict:
        """Totals so far: frames and bytes of each kind of socket, sockets closed everywhere."""
        marks = await self._ask(b"mark\n")
        totals: dict = {"closed": sum(m["closed"] for m in marks)}
        for mark in marks:
            for kind, figures in mark["kinds"].items():
                into = totals.setdefault(kind, {"frames": 0, "bytes": 0})
                into["frames"] += figures["frames"]
                into["bytes"] += figures["bytes"]
        return totals

    async def dump(self) -> dict[str, dict]:
        """Each kind's record (see ``bench.viral_client``), merged over processes; they then exit."""
        merged: dict[str, dict] = {}
        for report in await self._ask(b"dump\n"):
            for group in report["groups"]:
                into = merged.setdefault(group["kind"], group)
                if into is group:
                    continue
                into["marker"] += group["marker"]
                into["probes"] += group["probes"]
                for field in (
                    "sockets",
                    "failed",
                    "flushes",
                    "sockets_over_budget",
                    "frames_over_budget",
                    "sockets_with_short_gap",
                ):
                    into[field] += group[field]
                into["counts_frames_max"] = max(into["counts_frames_max"], group["counts_frames_max"])
                gaps = [g for g in (into["min_gap"], group["min_gap"]) if g is not None]
                into["min_gap"] = min(gaps, default=None)
        return merged


def staleness(
    signatures: list[tuple[float, int]], probes: list[list[list[float]]]
) -> tuple[list[float], int]:
    """Per probe and signature: first counts frame whose count includes it, minus the 201's time."""
    values: list[float] = []
    missing = 0
    for seen in probes:
        if not seen:
            continue
        times = [t for t, _ in seen]
        counts = list(itertools.accumulate((c for _, c in seen), max))
        for at, count in signatures:
            index = bisect.bisect_left(counts, count)
            if index < len(counts):
                values.append(times[index] - at)
            else:
                missing += 1
    return values, missing


def _ms(value: float) -> float:
    return value * 1000 if not math.isnan(value) else value


def delivery(markers: list[float | None], sent: float) -> dict:
    got = [m - sent for m in markers if m is not None]
    return {
        "first_ms": _ms(min(got, default=math.nan)),
        "p50_ms": _ms(percentile(got, 0.50)),
        "p99_ms": _ms(percentile(got, 0.99)),
        "max_ms": _ms(max(got, default=math.nan)),
        "missed": sum(1 for m in markers if m is None),
    }


async def viral(
    server: Server, accounts: Accounts | None, watchers: int, seconds: float, clients: int, interval: float
) -> dict:
    """One storm at ``watchers`` public sockets; ``accounts`` None for the seed (no signing)."""
    await server.start()
    try:
        api = await HttpConnection("127.0.0.1", server.port).open()
        if accounts is None:  # the seed: register an author and an admin (cheap there)
            author_id, author = await _seed_user(api, "author@viral.example")
            _, admin = await _seed_user(api, "admin@viral.example")
            feed, greetings = "/ws/petitions", 0
            others = [("user", AUTHOR_SOCKETS, USER_PROBE_EVERY, 1, f"/ws/petitions/my/{author_id}")]
        else:
            (author_id, author), admin = accounts.author, accounts.admins[0][1]
            feed, greetings = public_path(server, author), 1
            others = [
                ("user", AUTHOR_SOCKETS, USER_PROBE_EVERY, 1, f"/ws/petitions/my/{author_id}?token={author}")
            ]
            others += [("admin", 1, 1, 1, f"/ws/admin?token={token}") for _, token in accounts.admins]
        body = {"title": "Ban the streetlight tax", "description": "It went viral.", "category": "roads"}
        status, petition = await api.json("POST", "/api/petitions", body, token=author)
        assert status == 201, (status, petition)
        petition_id = petition["petition_id"]
        every = max(1, watchers // PUBLIC_PROBES)
        rss_before = server.rss_kb()
        group = WatcherGroup(server, petition_id, interval, (watchers, every, greetings, feed), others)
        async with group:
            await asyncio.sleep(0.5)
            rss_after = server.rss_kb()
            start_mark = await group.mark()
            tick_before = await _counts_figures(api)
            cpu_before = server.cpu_seconds()
            started = time.monotonic()
            label = f"viral-{watchers}"
            async with profiled(server, label):
                if accounts is None:
                    change = asyncio.ensure_future(_status_change(server, petition_id, admin, 1.0))
                    result = None
                    await asyncio.sleep(2.0)
                else:
                    change = asyncio.ensure_future(_status_change(server, petition_id, admin, seconds / 2))
                    result = await _sign_storm(server, petition_id, accounts, seconds, clients)
                sent, committed, answered = await change
            storm_seconds = time.monotonic() - started
            cpu = server.cpu_seconds() - cpu_before
            tick_after = await _counts_figures(api)
            end_mark = await group.mark()
            await asyncio.sleep(interval + 0.5)  # the last counts frame
            merged = await group.dump()
    finally:
        server.stop()
    public = merged.get("public", {"marker": [], "probes": [], "sockets": 0})
    document = {
        "scenario": "viral",
        "server": server.name,
        "watchers": watchers,
        "watchers_ready": public["sockets"],
        "failed": group.failed,
        "anonymous": accounts is None or getattr(server, "anonymous", False),
        "interval": interval,
        "kb_per_socket": (rss_after - rss_before) / max(group.ready, 1),
        "closed": end_mark["closed"] - start_mark["closed"],
        "server_cpu_share": cpu / storm_seconds,
        # The feeds' counts ticks (their fan-out) as a share of the server's CPU over the storm,
        # and the interval the fan-out budget had chosen by its end (None: a checkout without it).
        "tick_cpu_share": (
            (tick_after["cpu"] - tick_before["cpu"]) / cpu if tick_after["cpu"] is not None and cpu else None
        ),
        "count_interval_chosen": tick_after["interval"],
        "fanout_budget": tick_after["budget"],
        "status_http_ms": (answered - sent) * 1000,
        "status_commit_after_send_ms": (committed - sent) * 1000,
    }
    for kind in ("public", "user", "admin"):
        if kind in merged:
            sockets = max(merged[kind]["sockets"], 1) * storm_seconds
            for field in ("frames", "bytes"):
                moved = end_mark[kind][field] - start_mark[kind][field]
                document[f"{field}_per_{kind}_socket_s"] = moved / sockets
            markers = merged[kind]["marker"]
            document.update({f"status_{kind}_{k}": v for k, v in delivery(markers, committed).items()})
            document[f"status_{kind}_from_send_p99_ms"] = delivery(markers, sent)["p99_ms"]
    feeds = [merged[k] for k in ("public", "admin") if k in merged]
    for field in ("sockets_over_budget", "frames_over_budget", "sockets_with_short_gap"):
        document[f"counts_{field}"] = sum(f[field] for f in feeds)
    document["counts_frames_max"] = max((f["counts_frames_max"] for f in feeds), default=0)
    document["counts_flushes"] = sum(f["flushes"] for f in feeds)
    gaps = [f["min_gap"] for f in feeds if f["min_gap"] is not None]
    document["counts_min_gap_ms"] = min(gaps) * 1000 if gaps else math.nan
    if result is not None:
        signatures = [
            (result.started + at, ujson.loads(answer)["signature_count"])
            for at, answer in zip(result.finished_at, result.answers, strict=True)
        ]
        document.update(_load_figures(result, "sign"))
        document["last_count"] = max((c for _, c in signatures), default=0)
        for label, kinds in (("", ("public", "admin")), ("user_", ("user",))):
            probes = [p for k in kinds if k in merged for p in merged[k]["probes"]]
            values, missing = staleness(signatures, probes)
            document[f"{label}staleness_p50_ms"] = _ms(percentile(values, 0.50))
            document[f"{label}staleness_p99_ms"] = _ms(percentile(values, 0.99))
            document[f"{label}staleness_missing"] = missing
            document[f"{label}probes"] = len(probes)
    return document


async def _counts_figures(api: HttpConnection) -> dict:
    """The counts tick's figures from ``/metrics``: CPU seconds so far, interval and budget in use."""
    status, body = await api.request("GET", "/metrics")
    figures: dict = {"cpu": None, "interval": None, "budget": None}
    if status != 200:
        return figures
    names = {
        "petitions_counts_fanout_cpu_seconds_total": "cpu",
        "petitions_counts_interval_seconds": "interval",
        "petitions_counts_fanout_budget": "budget",
    }
    for line in body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            figures[names[name]] = float(value)
    return figures


async def _seed_user(api: HttpConnection, email: str) -> tuple[int, str]:
    document = {"email": email, "name": email.split("@")[0], "password": "bench-password-1"}
    status, answer = await api.json("POST", "/api/auth/register", document)
    assert status in (200, 201), (status, answer)
    return answer["user"]["user_id"], answer["token"]


async def _status_change(
    server: Server, petition_id: int, token: str, after: float
) -> tuple[float, float, float]:
    """Wait ``after`` seconds, then ``submitted -> under_review``: when it was sent, committed, answered.

    All three are ``time.monotonic()``; the commit is the petition's ``updated_at`` (wall clock, ms).
    """
    conn = await HttpConnection("127.0.0.1", server.port).open()
    await asyncio.sleep(after)
    sent = time.monotonic()
    path = f"/api/petitions/{petition_id}/status"
    status, answer = await conn.json("PATCH", path, {"status": STATUS_TARGET}, token=token)
    answered = time.monotonic()
    conn.close()
    assert status == 200, (status, answer)
    wall = datetime.datetime.fromisoformat(answer["updated_at"]).replace(tzinfo=datetime.UTC).timestamp()
    return sent, wall - (time.time() - time.monotonic()), answered


async def _sign_storm(server: Server, petition_id: int, accounts: Accounts, seconds: float, clients: int):
    """``clients`` closed-loop clients signing, each request as the next unused signer."""
    signer = itertools.count()
    path = f"/api/petitions/{petition_id}/signatures"
    tokens = accounts.signers

    def sign(worker: int, n: int):
        return "POST", path, None, {"Authorization": f"Bearer {tokens[next(signer) % len(tokens)][1]}"}

    return await closed_loop(
        "127.0.0.1", server.port, sign, concurrency=clients, seconds=seconds, expect=201, keep_answers=True
    )


async def creates(server: Server, seconds: float, clients: int, tokens: list[str] | None) -> dict:
    """Creates at ``clients`` clients: the seed registers its 8 authors, ours uses seeded ones."""
    await server.start()
    try:
        if tokens is None:
            await server.prepare(8)
            tokens = server.tokens
        cpu_before = server.cpu_seconds()
        async with profiled(server, "viral-create"):
            result = await closed_loop(
                "127.0.0.1", server.port, create_request(tokens),
                concurrency=clients, seconds=seconds, expect=201,
            )  # fmt: skip
        share = (server.cpu_seconds() - cpu_before) / result.seconds
        return {
            "server_cpu_share": share,
            "scenario": "viral_create",
            "server": server.name,
            "clients": clients,
            **_load_figures(result, "create"),
        }
    finally:
        server.stop()


_TEMPLATES: dict[str, tuple[Path, Accounts]] = {}


async def run_all(args, work: Path, keep) -> None:
    """The whole viral scenario of one run: ours and the seed at each W, creates, and resume cost."""
    key = f"{work}:{args.signers}"
    if key not in _TEMPLATES:
        _TEMPLATES[key] = await seed_template(work, args.signers)
    template, accounts = _TEMPLATES[key]
    interval = args.count_interval
    for watchers in args.watcher_counts:
        server = ViralServer(work, template, interval)
        keep(await viral(server, accounts, watchers, args.storm_seconds, args.clients, interval))
    for watchers in args.watcher_counts:
        seed = SeedServer(work, args.peers)
        keep(await viral(seed, None, watchers, args.storm_seconds, args.clients, interval))
    top = max(args.watcher_counts)
    if top and not args.no_floor:  # one status change to the same sockets, idle: the fan-out floor
        for make in (lambda: OurServer(work), lambda: BroadcastServer(work, args.peers, raw=True)):
            keep({**await fanout(make(), top, 3), "scenario": "viral_floor"})
    tokens = [token for _, token in accounts.signers[:8]]
    keep(await creates(ViralServer(work, template, interval), args.seconds, args.clients, tokens))
    keep(await creates(SeedServer(work, args.peers), args.seconds, args.clients, None))
    keep(await resume_cost(work, template, accounts, args.resume_signatures, interval, args.resume_repeats))
