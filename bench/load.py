"""A crowd on the dashboard, everything on this machine and on loopback.

Starts what production runs: granian (``--server-workers`` processes of ``--server-threads``
threads, WSGI, ``DEBUG=false``), a Celery
worker and beat, on a throwaway PostgreSQL database and a Redis of its own, with an SMTP sink
(aiosmtpd, STARTTLS + AUTH) as every tenant's custom SMTP server and an authoritative DNS server
for the deliverability look-ups. ``--tenants`` tenants (an admin and reps each) have a history:
``--history`` sent messages per tenant over 30 days, 5 % of them bounced through the product's
own ingestion.

Then ``--sessions`` signed-in people (one admin in ten) each ask for a page of their role's usual
mix every ``--think`` seconds on average (exponential gaps), for ``--seconds``: the home
overview, the Outbox and its Sent folder, template and campaign analytics, reasons & domains,
channels, suppressions, templates, campaigns, the live feed (which then polls for news every 4 s
while it is open, as the page does) and composing an email, which is sent by the worker to the
sink while the crowd goes on. Each response is read whole; its time is from the first byte sent
to the last byte read.

Prints p50 / p95 / max per page, errors (any status >= 400, a reset or a time-out), requests per
second offered and served, the CPU seconds each process used (the generator's own counted, on
the same machine), and checks that nothing was lost: every email whose compose answered with a
redirect reached the sink exactly once.

    DATABASE_URL=postgresql://… python -m bench.load [--sessions 200] [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

from bench._setup import ROOT, django_database, machine, report

PASSWORD = "load-bench-password"  # noqa: S105 - throwaway users of a throwaway database
TARGET_P95_MS = 500
LIVE_POLL_SECONDS = 4.0
TIMEOUT = 30.0

# (page, path, weight): what a rep and an admin ask for, by how often. "compose" is the
# compose page and then its POST (a separate row, "send").
REP_MIX = [
    ("home", "/", 20),
    ("outbox", "/outbox/", 18),
    ("sent folder", "/outbox/sent/", 10),
    ("template analytics", "/analytics/", 14),
    ("live feed", "/analytics/live/", 10),
    ("compose", "/outbox/compose/", 12),
    ("templates", "/templates/", 6),
    ("campaigns", "/campaigns/", 6),
    ("campaign analytics", "/analytics/campaigns/", 4),
]
ADMIN_MIX = [
    ("home", "/", 24),
    ("channels", "/channels/", 14),
    ("template analytics", "/analytics/", 14),
    ("campaign analytics", "/analytics/campaigns/", 10),
    ("reasons & domains", "/analytics/breakdown/", 10),
    ("outbox", "/outbox/", 10),
    ("live feed", "/analytics/live/", 8),
    ("suppressions", "/suppressions/", 5),
    ("compose", "/outbox/compose/", 5),
]
DOMAINS = 40  # recipient domains, prospect0.example …


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--think", type=float, default=5.0, help="mean seconds between pages")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--history", type=int, default=5000, help="sent messages per tenant")
    parser.add_argument("--server-workers", type=int, default=2, help="granian processes")
    parser.add_argument(
        "--server-threads", type=int, default=4, help="granian's blocking threads per process"
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("bench.load needs DATABASE_URL pointing at PostgreSQL")
    for tool in ("redis-server",):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.load needs {tool} (apt-get install redis-server)")
    with redis_server() as redis_url:
        os.environ["REDIS_URL"] = redis_url
        os.environ["MSC_REQUIRE_MFA"] = "false"  # sign-in is not what is measured
        with django_database() as database:
            run(args, redis_url, database)


def run(args: argparse.Namespace, redis_url: str, database: str) -> None:
    import logging

    from django.conf import settings

    from msc_admin.devtls import make_certificates
    from tests.dnsserver import dns_server

    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # the history's sends
    certs = make_certificates(Path(tempfile.mkdtemp(prefix="bench-load-certs-")))
    settings.MSC_EXTRA_CA_FILE = str(certs.ca_file)
    settings.MSC_OUTBOUND_ALLOW_PRIVATE = True
    records = {f"prospect{d}.example": ["MX 10 mx.prospect.example."] for d in range(DOMAINS)}
    for t in range(args.tenants):
        records[f"load{t}.example"] = ['TXT "v=spf1 ip4:127.0.0.1 -all"', "MX 10 mx.example."]
        records[f"_dmarc.load{t}.example"] = ['TXT "v=DMARC1; p=none"']
    with dns_server(records) as dns, sink_process(certs) as sink:
        settings.MSC_DNS_NAMESERVERS = [dns.address]
        from msc_admin.celery import app

        app.conf.task_always_eager = True  # the history is made in this process
        started = time.perf_counter()
        people = world(sink, args)
        app.conf.task_always_eager = False
        print(
            f"  world: {args.tenants} tenants, {len(people)} people, "
            f"{args.history * args.tenants:,} messages of history "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        env = child_env(certs, redis_url, dns.address)
        static = Path(tempfile.mkdtemp(prefix="bench-load-static-"))
        env["STATIC_ROOT"] = str(static)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        with services(env, args.server_workers, args.server_threads) as procs:
            asyncio.run(warm_up(procs.port, people))
            before = {name: tree_cpu(pid) for name, pid in procs.pids.items()}
            result = asyncio.run(crowd(procs.port, people, args))
            cpu = {name: tree_cpu(pid) - before[name] for name, pid in procs.pids.items()}
            lost, duplicates, waited = delivered(sink, result.sent_to, deadline=180)
        shutil.rmtree(static, ignore_errors=True)
    print_and_report(args, database, result, cpu, lost, duplicates, waited)


# --- Processes --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis of the benchmark's own (no persistence), on a free loopback port."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def sink_process(certs) -> Iterator[SimpleNamespace]:
    """The SMTP sink in its own process (off our CPU and GIL), every tenant's SMTP server. On
    ``collect`` it hands back the Message-ID of every message it accepted."""
    ready: multiprocessing.Queue = multiprocessing.Queue()
    asks: multiprocessing.Queue = multiprocessing.Queue()
    answers: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(
        target=_serve, args=(certs.trusted, ready, asks, answers), daemon=True
    )
    proc.start()
    host, port = ready.get(timeout=30)

    def collect() -> list[str]:
        asks.put("collect")
        return answers.get(timeout=60)

    try:
        yield SimpleNamespace(host=host, port=port, collect=collect, pid=proc.pid)
    finally:
        asks.put("stop")
        proc.join(10)


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.I | re.M)


def _serve(cert, ready, asks, answers) -> None:
    import logging

    from tests.mailservers import smtp_server

    logging.getLogger("mail.log").setLevel(logging.ERROR)
    with smtp_server(mode="starttls", cert=cert, users={"load": "pw"}) as sink:
        ready.put((sink.host, sink.port))
        while asks.get() == "collect":
            ids = []
            for message in list(sink.received.messages):
                found = _MESSAGE_ID.search(message["data"])
                ids.append(found.group(1).decode() if found else "")
            answers.put(ids)


def child_env(certs, redis_url: str, dns: str) -> dict[str, str]:
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        # As production runs it, on plain HTTP on loopback (no TLS proxy in front).
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "MSC_SECRET_KEYS": ",".join(f"{kid}:{key}" for kid, key in settings.MSC_SECRET_KEYS),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "MSC_REQUIRE_MFA": "false",
        "MSC_OUTBOUND_ALLOW_PRIVATE": "true",
        "MSC_EXTRA_CA_FILE": str(certs.ca_file),
        "MSC_DNS_NAMESERVERS": dns,
        "LOG_LEVEL": "WARNING",
    }


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            found[int(fields[1])].append(int(stat.parent.name))
    return found


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its living descendants."""
    children = _children()
    total, todo = 0.0, [pid]
    while todo:
        one = todo.pop()
        total += _cpu(one)
        todo += children.get(one, [])
    return total


@contextmanager
def services(env: dict[str, str], workers: int, threads: int) -> Iterator[SimpleNamespace]:
    """granian, a Celery worker and Celery beat, started and waited for. granian's threads are
    set: by default a WSGI worker runs up to 256 of them, each with its own database connection,
    which overflows PostgreSQL's 100 under a crowd ("too many clients")."""
    port = _free_port()
    logs = ROOT / "test-artifacts"
    logs.mkdir(exist_ok=True)
    bin_dir = Path(sys.executable).parent
    granian = str(bin_dir / "granian") if (bin_dir / "granian").exists() else "granian"
    schedule = Path(tempfile.mkdtemp(prefix="bench-load-beat-")) / "schedule"
    commands = {
        "web (granian)": [
            granian, "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--blocking-threads", str(threads), "--no-ws",
            "--log-level", "warning",
            "msc_admin.wsgi:application",
        ],
        "celery worker": [
            sys.executable, "-m", "celery", "-A", "msc_admin", "worker", "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "load@%h",
        ],
        "celery beat": [
            sys.executable, "-m", "celery", "-A", "msc_admin", "beat", "--loglevel=WARNING",
            "--schedule", str(schedule),
        ],
    }  # fmt: skip
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            log = open(logs / f"bench-load-{name.split()[0]}-{name.split()[-1]}.log", "wb")  # noqa: SIM115
            procs[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while not _healthy(port):
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): see test-artifacts/")
            if time.monotonic() > deadline:
                raise RuntimeError("granian did not answer /health/ within 60 s")
            time.sleep(0.2)
        pids = {name: proc.pid for name, proc in procs.items()}
        yield SimpleNamespace(port=port, pids=pids)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as conn:
            conn.sendall(b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# --- The world --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    email: str
    admin: bool
    session: str  # the session cookie of a signed-in session


def world(sink, args: argparse.Namespace) -> list[Person]:
    from django.contrib.auth.hashers import make_password
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Membership, Role, Tenant, User
    from bounces import services as bounces
    from channels import services as channels
    from channels.kinds import Security, SmtpConfig
    from channels.models import ReceivingDomain, TeamSendingSettings
    from sending.models import Campaign, CampaignStep, Message, MessageStatus, Template

    rng = random.Random(7)
    now = timezone.now()
    ReceivingDomain.objects.bulk_create(
        ReceivingDomain(domain=f"prospect{d}.example", provider="other", checked_at=now)
        for d in range(DOMAINS)
    )
    per_tenant = max(2, args.sessions // args.tenants)
    people: list[Person] = []
    # One hash for everyone: PBKDF2 costs about 0.9 s of CPU per password here, and the crowd
    # signs in by session cookie, so hashing 200 times would only slow the world's build.
    hashed = make_password(PASSWORD)
    template = (ROOT / "bench" / "bounce-template.eml").read_text()
    for t in range(args.tenants):
        tenant = Tenant.objects.create(name=f"Load {t}", slug=f"load-{t}")
        TeamSendingSettings.objects.create(tenant=tenant, throttling_enabled=False)
        members = []
        for n in range(per_tenant):
            admin = n == 0
            user = User.objects.create_user(f"{'admin' if admin else f'rep{n}'}@load{t}.example")
            user.password = hashed
            user.save(update_fields=["password"])
            Membership.objects.create(
                user=user, tenant=tenant, role=Role.ADMIN if admin else Role.REP
            )
            members.append(user)
        channel = channels.channel_save_smtp(
            tenant=tenant,
            actor=members[0],
            owner=None,
            config=SmtpConfig(
                host=sink.host, port=sink.port, security=Security.STARTTLS, username="load"
            ),
            password="pw",  # noqa: S106 - the local sink's throwaway login
            use_for_all_members=True,
        )
        identities = [channels.identity_ensure_default(user=u, tenant=tenant) for u in members]
        templates = [
            Template.objects.create(
                tenant=tenant, owner=members[0], name=f"Template {n}", subject=f"Hello {n}",
                body="Hi {{first_name}}", shared=True,
            )
            for n in range(10)
        ]  # fmt: skip
        steps = []
        for c in range(3):
            campaign = Campaign.objects.create(
                tenant=tenant, owner=members[1 + c % (per_tenant - 1)], name=f"Campaign {c}",
                status="active", started_at=now - timedelta(days=30),
            )  # fmt: skip
            steps += [
                CampaignStep.objects.create(
                    campaign=campaign, position=p, template=templates[p], delay_days=p
                )
                for p in range(1, 4)
            ]
        history = []
        for i in range(args.history):
            who = rng.randrange(len(members))
            step = rng.choice(steps) if i % 3 == 0 else None
            sent = now - timedelta(seconds=rng.randrange(30 * 86400))
            history.append(
                Message(
                    tenant=tenant, sender=members[who], identity=identities[who],
                    channel=channel,
                    template=step.template if step else rng.choice(templates),
                    campaign_step=step, to_email=f"p{i}@prospect{i % DOMAINS}.example",
                    to_domain=f"prospect{i % DOMAINS}.example", from_email=members[who].email,
                    subject="Hello", body="Hi", message_id=f"<load.{t}.{i}@load{t}.example>",
                    status=MessageStatus.SENT, sent_at=sent, handed_over_at=sent,
                )
            )  # fmt: skip
        Message.objects.bulk_create(history, batch_size=2000)
        bounced = [m for m in history if rng.random() < 0.05]
        raws = [
            template.replace("p{i}@prospect.test", m.to_email)
            .replace("<msc.bench{i}@bench.test>", m.message_id)
            .replace("{i}", f"{t}-{m.to_email}")
            .encode()
            for m in bounced
        ]
        for at in range(0, len(raws), 50):
            bounces.ingest_many(
                tenant=tenant, items=[bounces.Incoming(r) for r in raws[at : at + 50]]
            )
        for user in members:
            client = Client()
            client.force_login(user)
            people.append(Person(user.email, user == members[0], client.cookies["sessionid"].value))
    from django.core.management import call_command

    call_command("rebuild_rollups", verbosity=0)
    with contextlib.suppress(Exception):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return people[: args.sessions]


# --- The crowd --------------------------------------------------------------------------------


@dataclass
class Result:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sent_to: list[str] = field(default_factory=list)  # recipients of each email composed
    seconds: float = 0.0
    generator_cpu: float = 0.0


class Http:
    """One keep-alive HTTP/1.1 connection to the server: the browser tab of one person."""

    def __init__(self, port: int, cookies: dict[str, str]) -> None:
        self.port = port
        self.cookies = cookies
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        # A POST goes on a fresh connection: a kept-alive one the server has just closed would
        # leave it unknown whether the email was composed, and a retry could compose it twice.
        if method != "GET":
            await self.close()
        for attempt in (1, 2):
            reused = self.writer is not None
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            lines = [
                f"{method} {path} HTTP/1.1",
                f"Host: 127.0.0.1:{self.port}",
                f"Cookie: {cookie}",
                "Accept: text/html",
                "Accept-Language: en",
                *(f"{k}: {v}" for k, v in (headers or {}).items()),
            ]
            if body:
                lines += [
                    "Content-Type: application/x-www-form-urlencoded",
                    f"Content-Length: {len(body)}",
                ]
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            try:
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed before answering")
            except (ConnectionError, OSError):
                await self.close()
                if reused and attempt == 1 and method == "GET":
                    continue  # the server closed an idle kept-alive connection: reconnect
                raise
            return await self._rest(status_line)
        raise AssertionError("unreachable")

    async def _rest(self, status_line: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        cookies: list[str] = []
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "set-cookie":
                cookies.append(value.strip())
            headers[name.lower()] = value.strip()
        for one in cookies:
            key, _, rest = one.partition("=")
            self.cookies[key] = rest.split(";", 1)[0]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                body += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body


_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
_IDENTITY = re.compile(rb'<select name="identity"[^>]*>.*?<option value="(\d+)"', re.S)
_NEWER = re.compile(rb"live/newer/\?after=(\d+)")


async def warm_up(port: int, people: list[Person], rounds: int = 4) -> None:
    """Every page of both mixes a few times, each on a new connection (so that every server
    process compiles its templates and fills its caches), before anything is measured."""
    admin = next(p for p in people if p.admin)
    rep = next((p for p in people if not p.admin), admin)
    for _ in range(rounds):
        for who, mix in ((admin, ADMIN_MIX), (rep, REP_MIX)):
            for _page, path, _weight in mix:
                http = Http(port, {"sessionid": who.session})
                with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
                    await asyncio.wait_for(http.request("GET", path), TIMEOUT)
                await http.close()


async def crowd(port: int, people: list[Person], args: argparse.Namespace) -> Result:
    result = Result()
    rng = random.Random(11)
    until = time.monotonic() + args.seconds
    composed = iter(range(10**9))

    async def timed(page: str, http: Http, method: str, path: str, **kw) -> bytes | None:
        started = time.perf_counter()
        try:
            status, _headers, body = await asyncio.wait_for(
                http.request(method, path, **kw), TIMEOUT
            )
        except (
            TimeoutError,
            ConnectionError,
            OSError,
            ValueError,
            asyncio.IncompleteReadError,
        ) as exc:
            await http.close()
            result.errors[page].append(type(exc).__name__)
            return None
        result.times[page].append((time.perf_counter() - started) * 1000)
        ok = status < 400 and (method != "POST" or status == 302)
        if not ok:
            result.errors[page].append(f"HTTP {status}")
            return None
        return body

    async def person(who: Person, seed: int) -> None:
        mine = random.Random(seed)
        mix = ADMIN_MIX if who.admin else REP_MIX
        pages, weights = [(n, p) for n, p, _ in mix], [w for _, _, w in mix]
        http = Http(port, {"sessionid": who.session})
        await asyncio.sleep(mine.uniform(0, args.think))
        while time.monotonic() < until:
            (page, path), pause = mine.choices(pages, weights)[0], mine.expovariate(1 / args.think)
            body = await timed(page, http, "GET", path)
            if body is not None and page == "compose":
                await compose(http, body, mine)
            elif body is not None and page == "live feed":
                await live(http, body, time.monotonic() + pause)
                continue
            await asyncio.sleep(max(0.0, min(pause, until - time.monotonic())))
        await http.close()

    async def compose(http: Http, page: bytes, mine: random.Random) -> None:
        token, identity = _CSRF.search(page), _IDENTITY.search(page)
        if token is None or identity is None:
            result.errors["send"].append("no compose form")
            return
        await asyncio.sleep(mine.uniform(2, 6))  # typing
        n = next(composed)
        to = f"lead{n}@prospect{n % DOMAINS}.example"
        form = {
            "csrfmiddlewaretoken": token.group(1).decode(),
            "identity": identity.group(1).decode(),
            "to": to,
            "template": "",
            "subject": f"Following up {n}",
            "body": "Hi there, a quick follow-up.",
            "send_at": "",
        }
        origin = f"http://127.0.0.1:{port}"
        headers = {"Origin": origin, "Referer": f"{origin}/outbox/compose/"}
        body = urlencode(form).encode()
        answer = await timed("send", http, "POST", "/outbox/compose/", body=body, headers=headers)
        if answer is not None:
            result.sent_to.append(to)

    async def live(http: Http, page: bytes, leave: float) -> None:
        found = _NEWER.search(page)
        after = found.group(1).decode() if found else "0"
        while (now := time.monotonic()) < min(leave, until):
            await asyncio.sleep(min(LIVE_POLL_SECONDS, leave - now))
            if time.monotonic() >= min(leave, until):
                break
            body = await timed(
                "live feed update", http, "GET", f"/analytics/live/newer/?after={after}",
                headers={"HX-Request": "true"},
            )  # fmt: skip
            if body and (newer := re.search(rb"after=(\d+)", body)):
                after = newer.group(1).decode()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(person(p, rng.randrange(10**9)) for p in people))
    result.seconds = time.perf_counter() - started
    result.generator_cpu = time.process_time() - cpu
    return result


def delivered(sink, sent_to: list[str], deadline: float) -> tuple[int, int, float]:
    """(emails composed but not delivered, emails delivered more than once, seconds waited)
    once every composed email is sent, or the deadline has passed."""
    from sending.models import Message, MessageStatus

    expected = {
        m: to
        for m, to in Message.objects.filter(to_email__in=sent_to).values_list(
            "message_id", "to_email"
        )
    }
    started = time.monotonic()
    while True:
        sent = Message.objects.filter(to_email__in=sent_to, status=MessageStatus.SENT).count()
        if sent >= len(sent_to) or time.monotonic() - started > deadline:
            break
        time.sleep(0.5)
    ids = [i for i in sink.collect() if i in expected]
    counts: dict[str, int] = defaultdict(int)
    for i in ids:
        counts[i] += 1
    lost = len(sent_to) - len(counts)
    duplicates = sum(1 for c in counts.values() if c > 1)
    return lost, duplicates, time.monotonic() - started


def _pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def print_and_report(args, database, result: Result, cpu, lost, duplicates, waited) -> None:
    served = sum(len(v) for v in result.times.values())
    errors = sum(len(v) for v in result.errors.values())
    offered = args.sessions / args.think
    print(
        f"load benchmark: {args.sessions} sessions, a page every {args.think:g} s on average "
        f"(~{offered:.0f} requests/s offered) for {result.seconds:.0f} s; granian x"
        f"{args.server_workers}, a Celery worker and beat; {database}; {machine()}"
    )
    print(f"  {'page':22s} {'requests':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} errors")
    worst = ("", 0.0)
    for page in sorted(result.times, key=lambda p: -len(result.times[p])):
        times = result.times[page]
        p95 = _pct(times, 95)
        worst = max(worst, (page, p95), key=lambda w: w[1])
        print(
            f"  {page:22s} {len(times):8d} {_pct(times, 50):8.0f} {p95:8.0f} {max(times):8.0f} "
            f"{len(result.errors.get(page, []))}"
        )
    for page, found in result.errors.items():
        if found:
            kinds: dict[str, int] = defaultdict(int)
            for e in found:
                kinds[e] += 1
            print(f"  errors on {page}: {dict(kinds)}")
    rate = served / result.seconds if result.seconds else 0.0
    print(f"  served {rate:.1f} requests/s, {errors} errors")
    total = result.generator_cpu + sum(cpu.values())
    print(f"  CPU seconds: generator {result.generator_cpu:.0f}", end="")
    for name, seconds in cpu.items():
        print(f", {name} {seconds:.0f}", end="")
    print(f" (of {2 * result.seconds:.0f} on {os.cpu_count()} cores; PostgreSQL not counted)")
    per_request = 1000 * cpu.get("web (granian)", 0.0) / served if served else 0.0
    print(f"  server CPU per request {per_request:.1f} ms")
    print(
        f"  emails composed {len(result.sent_to)}, not delivered {lost}, delivered twice "
        f"{duplicates} (waited {waited:.0f} s after the crowd left)"
    )
    met = worst[1] <= TARGET_P95_MS and errors == 0 and lost == 0 and duplicates == 0
    rows = [
        {
            "benchmark": (
                f"a crowd: {args.sessions} signed-in sessions, a page every {args.think:g} s "
                f"each for {result.seconds / 60:.0f} min, mail composed and sent meanwhile"
            ),
            "product": (
                f"{rate:.0f} requests/s served; slowest page ({worst[0]}) p95 "
                f"{worst[1]:.0f} ms; {errors} errors; {len(result.sent_to)} emails, "
                f"{lost} lost, {duplicates} twice"
            ),
            "baseline": (
                f"{offered:.0f} requests/s offered; server CPU {per_request:.0f} ms a request; "
                f"generator {result.generator_cpu:.0f} CPU s of {total:.0f}"
            ),
            "ratio": "—",
            "target": f"every page p95 ≤ {TARGET_P95_MS} ms, 0 errors, nothing lost"
            + (" (met)" if met else " (not met)"),
        }
    ]
    report(rows)


if __name__ == "__main__":
    main()
