"""Analytics pages at scale, in a world of many tenants, measured in one run.

1,000 tenants share the mail: the largest holds 20 % of it, the others the rest in a Zipf-like
tail (the second about 6 %, the smallest about 0.01 %). The largest has 20 reps, 200 templates
and 50 campaigns of 3 steps; every other tenant 3 reps, 10 templates and 2 campaigns. Messages
go over 90 days to one big receiving domain (``big.example``, 30 % of every tenant's mail, as
gmail.com is for many senders) and 5,000 others, 5 % of them bounced, each bounce with its
bounce event, and a live-feed entry per send and per bounce.

The rows are made inside PostgreSQL (``INSERT … SELECT … FROM generate_series``, with a fixed
random seed), into unlogged tables (no write-ahead log: this database is thrown away; ``--logged``
keeps them logged), with the big tables' indexes dropped during the load and built after it,
foreign keys not checked row by row (the rows are made consistent), then ``VACUUM (ANALYZE)``:
fresh statistics and a visibility map, as a database that has lived has, rather than the
planner's guesses about tables it has never seen and every first read writing hint bits. Then
the product's ``rebuild`` of every tenant's roll-ups (timed, per million messages) into emptied
roll-up tables whose indexes are built after it (``--operator-rebuild``: the first size into the
live tables, as ``rebuild_rollups`` runs), and another ``VACUUM (ANALYZE)`` of the roll-ups.
For the largest tenant's 30 days by domain it prints ``EXPLAIN (ANALYZE, BUFFERS)`` figures
(rows read, buffers), as the pages read them and from the daily rows only: what must not grow
with the mail for a fixed range.

Pages timed (server side, Django's test client, in process: no network, no browser), for the
admin of the largest tenant and of the smallest: template analytics (also narrowed to one
recipient domain), campaign analytics, reasons & domains, live feed and home, against a trivial
page in the same run; each page is warmed up first, then measured in ``--rounds`` requests,
three times over (``--passes``): the p95 reported is the worst of the passes (a page over a
second a request: 10 requests a pass). ``--explain`` also prints, for each of the largest
tenant's pages, the rows its statements read and the buffers they touch (``EXPLAIN (ANALYZE,
BUFFERS)``): what must not grow with the mail, whatever the machine's load.

``--keep NAME`` leaves the filled database under that name; ``--reuse NAME`` measures the pages
on it again without a fill (or fills only up to a bigger size), so pages can be measured
several times in a row on a quiet machine; ``dropdb NAME`` when done. The roll-ups are rebuilt
by ``--jobs`` connections at once (default: the cores), a tenant each.

``DATABASE_URL=postgresql://… python -m bench.analytics [--sizes 1000000,10000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from bench._setup import django_database, machine, report

TENANTS, LARGEST_SHARE = 1000, 0.20
LARGEST = {"reps": 20, "templates": 200, "campaigns": 50}
OTHERS = {"reps": 3, "templates": 10, "campaigns": 2}
STEPS, DAYS, BOUNCED, DOMAINS, IN_CAMPAIGN = 3, 90, 0.05, 5000, 0.4
# One receiving domain as big as gmail.com is for many senders: this share of every tenant's mail.
BIG_DOMAIN, BIG_SHARE = "big.example", 0.3
SEED = 0.7  # PostgreSQL's setseed(): the same rows every run
# The tables the fill writes in bulk: their indexes are built after each load.
BULK_TABLES = ("sending_message", "bounces_bounceevent", "analytics_notification")


def shares() -> list[float]:
    """Each tenant's share of the mail, the largest first: 20 %, then 1/rank of the rest."""
    weights = [1 / rank for rank in range(2, TENANTS + 1)]
    rest = sum(weights)
    return [LARGEST_SHARE] + [(1 - LARGEST_SHARE) * w / rest for w in weights]


@dataclass(frozen=True)
class BenchTenant:
    pk: int
    admin_pk: int
    share: float


def _world() -> list[BenchTenant]:
    """The tenants, their people, channel, templates and campaigns (ORM, in bulk), and the
    ``bench_tenant`` table the fill picks them from (one row per tenant, ids in arrays)."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import Membership, Role, Tenant, User
    from channels.kinds import ChannelKind
    from channels.models import Channel
    from sending.models import Campaign, CampaignStep, Template

    now = time_now()
    password = make_password("x")
    tenants = Tenant.objects.bulk_create(
        [Tenant(name=f"Bench {n}", slug=f"bench-{n}") for n in range(TENANTS)]
    )
    sizes = [LARGEST if n == 0 else OTHERS for n in range(TENANTS)]
    people = User.objects.bulk_create(
        [
            User(email=f"{who}@bench-{n}.test", password=password)
            for n in range(TENANTS)
            for who in ["admin", *(f"rep{r}" for r in range(sizes[n]["reps"]))]
        ]
    )
    admins, reps, at = [], [], 0
    memberships = []
    for n, tenant in enumerate(tenants):
        team = people[at : at + 1 + sizes[n]["reps"]]
        at += len(team)
        admins.append(team[0])
        reps.append(team[1:])
        memberships.append(Membership(user=team[0], tenant=tenant, role=Role.ADMIN))
        memberships += [Membership(user=rep, tenant=tenant, role=Role.REP) for rep in team[1:]]
    Membership.objects.bulk_create(memberships)
    channels = Channel.objects.bulk_create(
        [Channel(tenant=t, kind=ChannelKind.CUSTOM_SMTP, config={}) for t in tenants]
    )
    templates = Template.objects.bulk_create(
        [
            Template(tenant=t, owner=admins[n], name=f"Template {k}", subject="S", body="B")
            for n, t in enumerate(tenants)
            for k in range(sizes[n]["templates"])
        ]
    )
    campaigns = Campaign.objects.bulk_create(
        [
            Campaign(
                tenant=t,
                owner=reps[n][k % len(reps[n])],
                name=f"Campaign {k}",
                status="active",
                started_at=now - timedelta(days=DAYS),
            )
            for n, t in enumerate(tenants)
            for k in range(sizes[n]["campaigns"])
        ]
    )
    by_tenant: dict[int, list] = {t.pk: [] for t in tenants}
    for template in templates:
        by_tenant[template.tenant_id].append(template)
    steps = CampaignStep.objects.bulk_create(
        [
            CampaignStep(
                campaign=c,
                position=p,
                template=by_tenant[c.tenant_id][(k * STEPS + p) % len(by_tenant[c.tenant_id])],
            )
            for k, c in enumerate(campaigns)
            for p in range(1, STEPS + 1)
        ]
    )
    steps_of: dict[int, list] = {t.pk: [] for t in tenants}
    tenant_of = {c.pk: c.tenant_id for c in campaigns}
    for step in steps:
        steps_of[tenant_of[step.campaign_id]].append(step)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_tenant (idx int PRIMARY KEY, tenant_id bigint, "
            "channel_id bigint, reps bigint[], templates bigint[], steps bigint[], "
            "step_templates bigint[])"
        )
        for n, tenant in enumerate(tenants):
            cursor.execute(
                "INSERT INTO bench_tenant VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    n + 1,
                    tenant.pk,
                    channels[n].pk,
                    [r.pk for r in reps[n]],
                    [t.pk for t in by_tenant[tenant.pk]],
                    [s.pk for s in steps_of[tenant.pk]],
                    [s.template_id for s in steps_of[tenant.pk]],
                ],
            )
    return [
        BenchTenant(tenant.pk, admins[n].pk, share)
        for n, (tenant, share) in enumerate(zip(tenants, shares(), strict=True))
    ]


def time_now() -> datetime:
    from django.utils import timezone

    return timezone.now()


def _insert_select(model, values: dict[str, str], rest: str, params: list) -> str:
    """``INSERT INTO model (every column) SELECT …``: the given SQL expressions, and every
    other column's default as a parameter (NULL where it may be), so a column added to the
    model later does not break the benchmark. Returns the SQL; ``params`` gets the defaults
    (placed before those of ``rest``)."""
    from django.db import connection

    columns, exprs, defaults = [], [], []
    for field in model._meta.concrete_fields:
        if field.column == "id":
            continue
        columns.append(field.column)
        if field.column in values:
            exprs.append(values[field.column])
            continue
        default = None if field.null else field.get_default()
        if isinstance(default, dict | list):
            default = json.dumps(default)
        exprs.append(f"%s::{field.db_type(connection)}")  # typed: NULL is not text
        defaults.append(default)
    params[:0] = defaults
    return (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(exprs)} {rest}"
    )


@contextmanager
def _indexes_built_after(tables: tuple[str, ...] = BULK_TABLES) -> Iterator[None]:
    """Drop the big tables' indexes and unique constraints (not their primary keys) for the
    load, and build them again after it: building an index once over the loaded rows is far
    cheaper than keeping it up row by row. Foreign keys are not checked per row
    (``session_replication_role``: the fill makes consistent rows). A throwaway database
    only."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, ix.relname, pg_get_indexdef(i.indexrelid), c.conname,
                   pg_get_constraintdef(c.oid)
            FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_class ix ON ix.oid = i.indexrelid
            LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = t.oid
                AND c.contype = 'u'
            WHERE t.relname = ANY(%s) AND NOT i.indisprimary
            """,
            [list(tables)],
        )
        found = cursor.fetchall()
        for table, index, _definition, constraint, _constraint_def in found:
            if constraint:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
            else:
                cursor.execute(f'DROP INDEX "{index}"')
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
            cursor.execute("SET maintenance_work_mem = '1GB'")
            for table, _index, definition, constraint, constraint_def in found:
                if constraint:
                    cursor.execute(
                        f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {constraint_def}'
                    )
                else:
                    cursor.execute(definition)
            cursor.execute("RESET maintenance_work_mem")


def fill(start: int, count: int, bounds: list[float]) -> None:
    """Add ``count`` messages (numbered from ``start``), each of a tenant drawn by its share,
    with their bounce events and feed entries; all made by PostgreSQL."""
    from django.db import connection

    from bounces.models import BounceEvent
    from sending.models import Message

    now = time_now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM sending_message")
        last = cursor.fetchone()[0]
        cursor.execute("SELECT setseed(%s)", [SEED * (1 if start == 0 else 0.5)])
    step = "1 + r.n %% cardinality(r.steps)"
    message = {
        "tenant_id": "r.tenant_id",
        "sender_id": "r.reps[1 + r.n %% cardinality(r.reps)]",
        "channel_id": "r.channel_id",
        "source": "'web'",
        "template_id": f"CASE WHEN r.in_step THEN r.step_templates[{step}] "
        "ELSE r.templates[1 + r.n %% cardinality(r.templates)] END",
        "campaign_step_id": f"CASE WHEN r.in_step THEN r.steps[{step}] END",
        "to_email": "'p' || r.n || '@' || r.to_domain",
        "to_domain": "r.to_domain",
        "from_email": "'rep@bench.test'",
        "from_name": "'Rep'",
        "subject": "'Hello'",
        "body": "'Hi'",
        "message_id": "'<msc.b' || r.n || '@bench.test>'",
        "status": "CASE WHEN r.bounced THEN 'bounced' ELSE 'sent' END",
        "smtp_code": "'250'",
        "attempts": "1",
        "created_at": "r.sent_at",
        "updated_at": "r.sent_at",
        "sent_at": "r.sent_at",
        "bounced_at": "CASE WHEN r.bounced THEN r.sent_at + interval '5 minutes' END",
    }
    rest = """
        FROM (
            SELECT pick.n, t.*,
                   %s::timestamptz - random() * %s * interval '1 day' AS sent_at,
                   random() < %s AS in_step, random() < %s AS bounced,
                   CASE WHEN random() < %s THEN %s
                        ELSE 'd' || pick.n %% %s || '.example' END AS to_domain
            FROM (SELECT n, width_bucket(random(), %s::float8[]) AS idx
                  FROM generate_series(%s::bigint, %s::bigint) n) pick
            JOIN bench_tenant t USING (idx)
            OFFSET 0
        ) r
    """
    params: list = [now, DAYS, IN_CAMPAIGN, BOUNCED, BIG_SHARE, BIG_DOMAIN, DOMAINS]
    params += [bounds, start, start + count - 1]
    messages_sql = _insert_select(Message, message, rest, params)
    reason = "(ARRAY['userunknown', 'mailboxfull', 'blocked', 'hostunknown'])[1 + m.id %% 4]"
    hard = "(ARRAY[true, false, false, true])[1 + m.id %% 4]"
    event = {
        "tenant_id": "m.tenant_id",
        "channel_id": "m.channel_id",
        "message_id": "m.id",
        "source": "'inbox'",
        "dedupe_key": "'bench:' || m.id",
        "kind": "'bounce'",
        "recipient": "m.to_email",
        "status": f"CASE WHEN {hard} THEN '5.1.1' ELSE '5.2.2' END",
        "smtp_code": "'550'",
        "reason": reason,
        "hard": hard,
        "diagnostic": "'550 5.1.1 User unknown'",
        "attributed_by": "'message_id'",
        "raw": "'\\x52657475726e2d506174683a203c3e'::bytea",
        "received_at": "m.bounced_at",
        "created_at": "m.bounced_at",
    }
    event_params: list = [last]
    events_sql = _insert_select(
        BounceEvent,
        event,
        "FROM sending_message m WHERE m.id > %s AND m.bounced_at IS NOT NULL",
        event_params,
    )
    bare = reason.replace("m.", "")
    feed_sql = f"""
        INSERT INTO analytics_notification (tenant_id, user_id, kind, text, link, created_at)
        SELECT tenant_id, sender_id, 'sent', 'Sent to ' || split_part(to_email, '@', 1)
               || ': Hello', '', sent_at
        FROM sending_message WHERE id > %s
        UNION ALL
        SELECT tenant_id, sender_id, 'bounced', to_email || ' bounced (' || {bare}
               || ')', '', bounced_at
        FROM sending_message WHERE id > %s AND bounced_at IS NOT NULL
    """  # noqa: S608 - our own SQL
    with _indexes_built_after(), connection.cursor() as cursor:
        cursor.execute(messages_sql, params)
        cursor.execute(events_sql, event_params)
        cursor.execute(feed_sql, [last, last])


ROLLUP_TABLES = (
    "analytics_rollup",
    "analytics_reasonrollup",
    "analytics_domainrollup",
    "analytics_domainweekrollup",
    "analytics_teamrollup",
    "analytics_teamweekrollup",
    "analytics_teamreasonrollup",
    "analytics_teamreasonweekrollup",
    "analytics_teamdomainrollup",
    "analytics_teamdomainweekrollup",
    "analytics_domaintemplaterollup",
    "analytics_domainreasonrollup",
)


def unlogged(tables: tuple[str, ...]) -> list[str]:
    """``ALTER TABLE … SET UNLOGGED`` for these tables and every table whose foreign keys lead
    to them (a logged table may not point at an unlogged one), the pointing ones first. Their
    rows then skip the write-ahead log: loading and indexing write them once, not twice. Reads
    are the same (same buffers, same plans); what is lost is crash safety, which a throwaway
    benchmark database does not need. Returns the tables changed."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE pointing(oid) AS (
                SELECT c.oid FROM pg_class c WHERE c.relname = ANY(%s) AND c.relkind = 'r'
                UNION
                SELECT k.conrelid FROM pg_constraint k JOIN pointing p ON k.confrelid = p.oid
                WHERE k.contype = 'f'
            )
            SELECT c.oid, c.relname FROM pointing JOIN pg_class c USING (oid)
            WHERE c.relpersistence = 'p'
            """,
            [list(tables)],
        )
        left = dict(cursor.fetchall())
        cursor.execute(
            "SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid <> confrelid"
        )
        edges = cursor.fetchall()
        done = []
        while left:
            ready = [
                oid
                for oid in left
                if not any(target == oid and source in left for source, target in edges)
            ]
            if not ready:
                raise RuntimeError(f"foreign keys in a cycle: {sorted(left.values())}")
            for oid in ready:
                cursor.execute(f'ALTER TABLE "{left[oid]}" SET UNLOGGED')
                done.append(left.pop(oid))
    return done


def rebuild_indexes_after(tenants: list[int], jobs: int = 1) -> None:
    """The product's ``rebuild`` of every tenant, on emptied roll-up tables whose indexes are
    built after it (only an index on the tenant meanwhile, for the rebuild's own DELETE) and
    whose foreign keys are not checked row by row: the same rows, in a fraction of the time.
    ``jobs`` connections rebuild at once, each taking the next tenant (largest first), as
    operators may run ``rebuild_rollups`` for different tenants side by side: each tenant's
    rows are its own, so they do not wait for each other."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(ROLLUP_TABLES)}")
    with _indexes_built_after(ROLLUP_TABLES), connection.cursor() as cursor:
        for table in ROLLUP_TABLES:
            cursor.execute(f"CREATE INDEX bench_{table}_tenant ON {table} (tenant_id)")
        left = queue.SimpleQueue()
        for tenant in tenants:
            left.put(tenant)
        workers = [threading.Thread(target=_rebuild_from, args=(left,)) for _ in range(jobs)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if _FAILED:
            raise _FAILED.pop()
        for table in ROLLUP_TABLES:
            cursor.execute(f"DROP INDEX bench_{table}_tenant")


_FAILED: list[BaseException] = []


def _rebuild_from(left: queue.SimpleQueue) -> None:
    """One connection's share of the rebuild: the next tenant until none is left."""
    from django.db import connection

    from analytics import rollups
    from bounces.selectors import outcomes

    try:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        while True:
            try:
                tenant = left.get_nowait()
            except queue.Empty:
                return
            rollups.rebuild([tenant], outcomes=outcomes)
    except BaseException as error:
        _FAILED.append(error)
    finally:
        connection.close()


def settle(tables: tuple[str, ...] = ()) -> None:
    """``VACUUM (ANALYZE)``: statistics for the planner, the visibility map for index-only
    scans, hint bits set now rather than by the first requests measured."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")


def timings(client, url: str, rounds: int, passes: int) -> tuple[float, float]:
    """Median and p95 in ms: the median of all requests, the worst of the passes' p95. A page
    whose warm-up requests take over a second is measured in at most ``SLOW_ROUNDS`` a pass
    (its p95 then the slowest of them): it is "not met" either way, and the run must end."""
    for n in range(5):
        started = time.perf_counter()
        assert client.get(url).status_code == 200, url  # warm
        if n and time.perf_counter() - started > 1:
            rounds = min(rounds, SLOW_ROUNDS)
            break
    every, worst = [], 0.0
    for _ in range(passes):
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        samples.sort()
        worst = max(worst, samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)])
        every += samples
    return statistics.median(every), worst


PAGES = [
    ("template analytics (team, 30 days)", "/analytics/?scope=team&range=30"),
    ("campaign analytics (team, 30 days)", "/analytics/campaigns/?scope=team&range=30"),
    ("reasons & domains (team, 30 days)", "/analytics/breakdown/?scope=team&range=30"),
    ("templates, one domain (team, 90 d)", "/analytics/?scope=team&range=90&domain=d7.example"),
    (
        "templates, the big domain (team, 90 d)",
        f"/analytics/?scope=team&range=90&domain={BIG_DOMAIN}",
    ),
    ("live feed (admin, first page)", "/analytics/live/"),
    ("home overview (admin)", "/"),
    ("trivial page (baseline)", "/health/"),
]
BASELINE = "trivial page (baseline)"
SLOW_ROUNDS = 10

Results = dict[str, tuple[float, float]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--operator-rebuild",
        action="store_true",
        help="rebuild the first size's roll-ups into live tables, as an operator would (slower)",
    )
    parser.add_argument(
        "--logged", action="store_true", help="keep the big tables logged (crash-safe, slower)"
    )
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="make the database under this name and leave it (with its rows) for --reuse",
    )
    parser.add_argument(
        "--reuse",
        metavar="NAME",
        help="measure on this database left by --keep, without a new fill (sizes already "
        "there are measured as they are, bigger ones filled on top); the database is left",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="connections rebuilding roll-ups at once (one tenant each; default: the cores)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) each page's statements: rows read, buffers touched",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # each line as it comes
    print(f"analytics benchmarks: {machine()}")
    began = time.perf_counter()
    with django_database(keep=args.keep, reuse=args.reuse) as database:
        from django.db import connection
        from django.test import Client

        from accounts.models import User
        from analytics import rollups
        from bounces.selectors import outcomes

        filled = 0
        if args.reuse:
            world = _world_found()
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM sending_message")
                filled = cursor.fetchone()[0]
            sizes = sorted({max(size, filled) for size in sizes})
            print(f"  reusing {args.reuse}: {filled:,} messages there, no fill for those")
        else:
            world = _world()
        if not args.logged and not args.reuse:
            made = unlogged(BULK_TABLES + ROLLUP_TABLES)
            print(f"  unlogged tables (no write-ahead log; a throwaway database): {len(made)}")
        largest, smallest = world[0], world[-1]
        cumulative, bounds = 0.0, []
        for tenant in world:
            bounds.append(cumulative)
            cumulative += tenant.share
        clients = {}
        for who, tenant in (("largest", largest), ("smallest", smallest)):
            clients[who] = Client()
            clients[who].force_login(User.objects.get(pk=tenant.admin_pk))
        results: dict[int, dict[str, Results]] = {}
        for size in sizes:
            if size == filled and args.reuse:
                print(f"  {size:,} messages in {database} (reused: no fill, no rebuild)")
                print(f"    {_counts(largest.pk, smallest.pk)}")
                print(f"    {explain_domain_reads(largest.pk)}")
                _measure(size, clients, results, args)
                continue
            started = time.perf_counter()
            fill(filled, size - filled, bounds)
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            settle(BULK_TABLES)
            settled = time.perf_counter() - started
            started = time.perf_counter()
            if size == sizes[0] and args.operator_rebuild:
                # As an operator runs it: into tables with their indexes and foreign keys.
                rollups.rebuild([t.pk for t in world], outcomes=outcomes)
                how = "rebuild_rollups"
            else:
                rebuild_indexes_after([t.pk for t in world], args.jobs)
                how = f"rebuild_rollups, indexes built after, {args.jobs} at once"
            rebuilt = time.perf_counter() - started
            started = time.perf_counter()
            settle(ROLLUP_TABLES)
            settled += time.perf_counter() - started
            counts = _counts(largest.pk, smallest.pk)
            print(
                f"  {size:,} messages in {database}: fill {loaded:.1f} s "
                f"({size - filled:,} new, indexes included), VACUUM ANALYZE {settled:.1f} s, "
                f"{how} {rebuilt:.1f} s ({rebuilt * 1e6 / size:.1f} s per million)"
            )
            print(f"    {counts}")
            print(f"    {explain_domain_reads(largest.pk)}")
            filled = size
            _measure(size, clients, results, args)
        elapsed = time.perf_counter() - began
        print(f"  whole run, fill included: {elapsed / 60:.1f} min")
        if args.keep:
            print(
                f"  database {args.keep} kept: measure again without a fill with "
                f"`python -m bench.analytics --reuse {args.keep} --sizes {filled}`; "
                f"drop it with `dropdb {args.keep}`"
            )
        _report(sizes, results)
        if len(sizes) > 1:
            for who in clients:
                small, large = results[sizes[0]][who], results[sizes[-1]][who]
                print(
                    f"  {who} tenant, growth {sizes[0]:,} -> {sizes[-1]:,} "
                    "(p95 ratio, target <= 1.5 for the largest):"
                )
                for name, _ in PAGES[:-1]:
                    print(f"    {name:38s} x{large[name][1] / small[name][1]:5.2f}")


def _measure(size: int, clients: dict, results: dict[int, dict[str, Results]], args) -> None:
    """Every page for each admin at this size, printed (with ``--explain``, first what each
    page's statements read for the largest tenant)."""
    from django.test import override_settings

    if args.explain:
        print("    largest tenant's pages, EXPLAIN (ANALYZE, BUFFERS) of their statements:")
        for line in explain_pages(clients["largest"]):
            print(f"      {line}", flush=True)
    results[size] = {}
    with override_settings(MSC_REQUIRE_MFA=False, ALLOWED_HOSTS=["testserver"]):
        for who, client in clients.items():
            results[size][who] = {
                name: timings(client, url, args.rounds, args.passes) for name, url in PAGES
            }
    for who in clients:
        print(f"    admin of the {who} tenant:")
        for name, (p50, p95) in results[size][who].items():
            print(f"      {name:38s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms", flush=True)


def _world_found() -> list[BenchTenant]:
    """The tenants of a kept database (``_world`` made them), largest first."""
    from accounts.models import Tenant, User

    tenants = dict(Tenant.objects.filter(slug__startswith="bench-").values_list("slug", "pk"))
    admins = dict(User.objects.filter(email__startswith="admin@bench-").values_list("email", "pk"))
    return [
        BenchTenant(tenants[f"bench-{n}"], admins[f"admin@bench-{n}.test"], share)
        for n, share in enumerate(shares())
    ]


def _counts(largest: int, smallest: int) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM sending_message WHERE tenant_id = %s), "
            "(SELECT count(*) FROM sending_message WHERE tenant_id = %s), "
            "(SELECT count(*) FROM bounces_bounceevent), "
            "(SELECT count(*) FROM analytics_notification), "
            "(SELECT count(*) FROM analytics_rollup), "
            "(SELECT count(*) FROM analytics_domainrollup), "
            "(SELECT count(*) FROM analytics_domainweekrollup), "
            "(SELECT count(*) FROM analytics_teamrollup), "
            "(SELECT count(*) FROM analytics_teamweekrollup), "
            "(SELECT count(*) FROM analytics_teamdomainweekrollup), "
            "(SELECT count(*) FROM analytics_domaintemplaterollup)",
            [largest, smallest],
        )
        row = cursor.fetchone()
    big, small, events, feed, rollup, domains, weeks, team, team_weeks, by_domain, templates = row
    return (
        f"largest tenant {big:,} messages, smallest {small:,}; {events:,} bounce events, "
        f"{feed:,} feed entries; roll-ups {rollup:,} rows, by domain {domains:,}, "
        f"by domain and week {weeks:,}, the team's by day {team:,} and by week {team_weeks:,}, "
        f"the team's by domain and week {by_domain:,}, by domain and template {templates:,}"
    )


def explain_domain_reads(tenant_id: int) -> str:
    """What the largest tenant's 30 days by domain cost PostgreSQL, read as the pages read them
    (whole weeks from the weekly rows) and, for comparison, from the daily rows only:
    ``EXPLAIN (ANALYZE, BUFFERS)`` of the breakdown's grouping by channel and domain and of
    its bounced domains, rows read from the tables and buffers touched. The figures that must
    not grow with the mail for a fixed range."""
    from unittest import mock

    from django.utils import timezone

    from analytics import domains

    today = timezone.localdate()
    scope = domains.DomainRange(tenant_id, today - timedelta(days=29), today)

    def cost(bounced: bool) -> tuple[int, int, float]:
        rows, params = scope.rows(bounced=bounced)
        return _plan_cost(
            "SELECT channel_key, domain, SUM(sent), SUM(hard) "  # noqa: S608 - our SQL
            f"FROM ({rows}) r GROUP BY channel_key, domain",
            params,
        )

    def daily_only(start, end, _today, daily=domains.DAILY, weekly=domains.WEEKLY):
        return [domains.Piece(daily, start, end, 1)]

    out = []
    for label, bounced in (("all rows", False), ("rows with bounces", True)):
        weekly = cost(bounced)
        with mock.patch.object(domains, "pieces", daily_only):
            daily = cost(bounced)
        out.append(
            f"{label}: by week {weekly[0]:,} rows, {weekly[1]:,} buffers, {weekly[2]:.0f} ms; "
            f"days only {daily[0]:,} rows, {daily[1]:,} buffers, {daily[2]:.0f} ms"
        )
    return "largest tenant's 30 days by domain, " + "; ".join(out)


def _plan_cost(sql: str, params: list | tuple | None = None) -> tuple[int, int, float]:
    """Rows read from tables, buffers touched and execution ms of one statement, by
    ``EXPLAIN (ANALYZE, BUFFERS)``, run twice (the second, warm, counted)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
    read = 0

    def walk(node: dict) -> None:
        nonlocal read
        if "Relation Name" in node:  # a table read (not a bitmap of an index)
            read += node["Actual Rows"] * node.get("Actual Loops", 1)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    top = plan["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return read, buffers, plan["Execution Time"]


def explain_pages(client) -> list[str]:
    """Each page's statements as the client's request ran them, each EXPLAINed: the rows they
    read from tables and the buffers they touched, summed over the page, and the heaviest
    statement. What must not grow with the mail for a fixed range (wall time varies with the
    machine's load; these do not)."""
    from django.db import connection
    from django.test import override_settings
    from django.test.utils import CaptureQueriesContext

    out = []
    with override_settings(MSC_REQUIRE_MFA=False, ALLOWED_HOSTS=["testserver"]):
        for name, url in PAGES[:-1]:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200, url
            rows = buffers = 0
            took = 0.0
            heaviest = (0, "")
            for query in captured.captured_queries:
                sql = query["sql"]
                if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                if "django_session" in sql or "FOR UPDATE" in sql.upper():
                    continue
                read, touched, ms = _plan_cost(sql)
                rows, buffers, took = rows + read, buffers + touched, took + ms
                heaviest = max(heaviest, (read, sql[:90]))
            out.append(
                f"{name:38s} {len(captured.captured_queries):3d} queries, {rows:9,} rows "
                f"read, {buffers:7,} buffers, {took:6.0f} ms (most rows: {heaviest[0]:,}, "
                f"{heaviest[1]!r})"
            )
    return out


def _report(sizes: list[int], results: dict[int, dict[str, Results]]) -> None:
    """The README's rows: the largest tenant's pages at the largest size."""
    small, large = results[sizes[0]]["largest"], results[sizes[-1]]["largest"]
    base = large[BASELINE][1]
    rows = []
    for name, _ in PAGES[:-1]:
        p50, p95 = large[name]
        growth = p95 / small[name][1]
        met = p95 <= 100 and (len(sizes) == 1 or growth <= 1.5)
        rows.append(
            {
                "benchmark": f"{name}, largest of 1,000 tenants, {sizes[-1]:,} messages",
                "product": f"p50 {p50:.0f} ms, p95 {p95:.0f} ms",
                "baseline": f"trivial page p95 {base:.0f} ms",
                "ratio": f"{p95 / base:.1f}x trivial"
                + (f"; {growth:.2f}x the {sizes[0]:,} p95" if len(sizes) > 1 else ""),
                "target": "p95 ≤ 100 ms, ≤ 1.5x the smaller" + (" (met)" if met else " (not met)"),
            }
        )
    report(rows)


if __name__ == "__main__":
    main()
