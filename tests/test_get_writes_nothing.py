"""Reading a page writes nothing: every page of each persona's walk, and every GET form on them,
leaves the database as it was, on PostgreSQL in autocommit (as production serves requests).

Writes are caught as they are sent: every statement on the connection while the pages are read
is looked at, so an UPDATE that changes no count is caught too, and named with the page that
sent it. The row counts of every table are compared around the whole walk as well, for a write
made some other way. The only tables a GET may write are Django's and allauth's bookkeeping,
listed in ``BOOKKEEPING`` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import responses
from django.core.signals import request_started
from django.db import connection
from django.test import Client

from accounts.models import Membership, Role, Tenant, User
from tests.conftest import add_totp
from tests.mailservers import SmtpServer
from tests.test_site_walk import DEPTH, PASSWORD, PERSONAS, Persona, demo_world, sign_in
from tests.walk import Walker

__all__ = ["demo_world"]  # the site walk's world, used here as a fixture

# Written by Django or allauth on any request, whatever the page: not the product's data.
BOOKKEEPING = {
    "django_session": "the session is saved when it changes: allauth keeps its state there (the"
    " TOTP secret being set up is stored when its page is shown), and flash messages",
}

# A member of a tenant that has just been set up: no team settings saved yet. Its pages must
# show the defaults without storing them.
NEW_TENANT = Persona("admin@initech.test", modern=True, min_pages=20)
READERS = {**PERSONAS, "new_tenant_admin": NEW_TENANT}

_WRITE = re.compile(
    r"^\s*(?:WITH\b.*?\)\s*)?(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|MERGE\s+INTO)"
    r"\s+\"?(\w+)\"?",
    re.IGNORECASE | re.DOTALL,
)


def written_table(sql: str) -> str | None:
    """The table a statement writes, or None for a read."""
    found = _WRITE.match(sql)
    return found.group(2) if found else None


@contextmanager
def writes_recorded(into: list[tuple[str, str]]) -> Iterator[None]:
    """Record (request, statement) for each statement that writes a table not in BOOKKEEPING."""
    current = ["(between requests)"]

    def started(sender: object, environ: dict[str, str], **kwargs: object) -> None:
        query = environ.get("QUERY_STRING", "")
        hx = " (htmx)" if environ.get("HTTP_HX_REQUEST") else ""
        current[0] = environ.get("PATH_INFO", "") + (f"?{query}" if query else "") + hx

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        table = written_table(sql)
        if table is not None and table not in BOOKKEEPING:
            into.append((current[0], sql[:300]))
        return execute(sql, params, many, context)

    request_started.connect(started)
    try:
        with connection.execute_wrapper(watch):
            yield
    finally:
        request_started.disconnect(started)


def row_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table not in BOOKKEEPING:
                cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - our tables
                counts[table] = cursor.fetchone()[0]
    return counts


def _new_tenant_admin() -> None:
    tenant = Tenant.objects.create(name="Initech", slug="initech")
    user = User.objects.create_user(email=NEW_TENANT.email or "", password=PASSWORD)
    Membership.objects.create(
        tenant=tenant, user=user, role=Role.ADMIN, joined_at=tenant.created_at
    )
    add_totp(user)


def test_the_sql_reader_tells_writes_from_reads() -> None:
    assert written_table('INSERT INTO "delivery_channels_identity" ("x") VALUES (1)') == (
        "delivery_channels_identity"
    )
    assert written_table('UPDATE "sending_message" SET "x" = 1') == "sending_message"
    assert written_table("UPDATE sending_message AS m SET status = 1") == "sending_message"
    assert written_table('DELETE FROM "django_session" WHERE 1') == "django_session"
    assert written_table("INSERT INTO sending_quotawindow AS q VALUES (1) ON CONFLICT DO UPDATE")
    assert written_table('SELECT * FROM "sending_message" FOR UPDATE') is None
    assert written_table('SELECT "x" FROM "t" WHERE "y" = \'UPDATE t\'') is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", list(READERS))
def test_reading_every_page_writes_nothing(demo_world: SmtpServer, name: str) -> None:
    _new_tenant_admin()
    persona = READERS[name]
    client = Client(raise_request_exception=False)
    if persona.email:
        sign_in(client, persona)
    walker = Walker(name, client)
    writes: list[tuple[str, str]] = []
    before = row_counts()
    with responses.RequestsMock(assert_all_requests_are_fired=False), writes_recorded(writes):
        walker.walk("/", depth=DEPTH)
        for form in [f for f in walker.forms if f.method == "get"]:
            walker.submit(form, htmx=False)
            walker.submit(form, htmx=True)
    after = row_counts()

    assert len(walker.pages) >= persona.min_pages, [v.line() for v in walker.visits]
    errors = [v.line() for v in walker.visits if v.status >= 500]
    assert not errors, errors
    assert not writes, f"{name}'s GETs wrote:\n" + "\n".join(f"GET {p}: {sql}" for p, sql in writes)
    changed = {t: (before[t], after.get(t)) for t in before if before[t] != after.get(t)}
    assert not changed, f"{name}'s GETs changed the row counts of {changed}"
