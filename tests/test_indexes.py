"""No index of ours that another index already serves.

Every INSERT writes every index of its table, and every UPDATE that changes an indexed column
writes them all too (a message's status is in several): an index whose columns lead another
one's, in the same order and operator classes, costs each write and serves no read the other
does not. Django adds one for each foreign key; where a composite index or unique constraint
starts with that key, the model says ``db_index=False``.

Read from the migrated test database (PostgreSQL), so what is checked is what the migrations
build. Django's own and allauth's tables (and the many-to-many tables Django makes) are left out.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

THIRD_PARTY = {"auth", "contenttypes", "sessions", "account", "socialaccount", "mfa", "sites"}


def redundant(indexes: list[tuple[str, str, list[str], list[str], bool, bool]]) -> list[str]:
    """(table, name, columns, operator classes, unique, partial or on expressions) of one
    table's indexes -> "table.name (served by other)" for each that another one serves."""
    found = []
    for table, name, columns, classes, unique, special in indexes:
        if unique or special:
            continue  # a constraint, or an index a plain one cannot stand in for
        for _, other, other_columns, other_classes, other_unique, other_special in indexes:
            if other == name or other_special:
                continue
            n = len(columns)
            same_prefix = other_columns[:n] == columns and other_classes[:n] == classes
            # The same columns as a constraint's; of two identical plain indexes, the one whose
            # name sorts last.
            if same_prefix and (len(other_columns) > n or other_unique or other < name):
                found.append(f"{table}.{name} (served by {other})")
                break
    return found


def our_indexes() -> dict[str, list[tuple[str, str, list[str], list[str], bool, bool]]]:
    # Our models' tables; the many-to-many tables Django makes (the user's groups and
    # permissions, from its own abstract user) are Django's.
    ours = {m._meta.db_table for m in apps.get_models() if m._meta.app_label not in THIRD_PARTY}
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT t.relname, i.relname, x.indkey::text, x.indclass::text, x.indisunique,
                      x.indpred IS NOT NULL OR x.indexprs IS NOT NULL
                 FROM pg_index x
                 JOIN pg_class i ON i.oid = x.indexrelid
                 JOIN pg_class t ON t.oid = x.indrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = current_schema()"""
        )
        rows = cursor.fetchall()
    tables: dict[str, list[tuple[str, str, list[str], list[str], bool, bool]]] = {}
    for table, name, key, classes, unique, special in rows:
        if table in ours:
            tables.setdefault(table, []).append(
                (table, name, key.split(), classes.split(), unique, special)
            )
    return tables


@pytest.mark.django_db
def test_no_index_of_ours_is_served_by_another() -> None:
    assert connection.vendor == "postgresql", "the suite runs on PostgreSQL"
    tables = our_indexes()
    assert "sending_message" in tables and "bounces_bounceevent" in tables
    found = [line for indexes in tables.values() for line in redundant(indexes)]
    assert not found, "indexes another index serves (drop them, or db_index=False):\n" + "\n".join(
        found
    )


def test_the_check_sees_a_served_index() -> None:
    t = "sending_message"
    assert redundant(
        [
            (t, "by_tenant", ["2"], ["1"], False, False),
            (t, "outbox", ["2", "5", "7"], ["1", "3", "1"], False, False),
            (t, "by_status", ["5"], ["3"], False, False),
            (t, "pattern", ["9"], ["4"], False, False),
            (t, "pattern_again", ["9"], ["4"], False, False),
            (t, "plain_text", ["9"], ["3"], False, False),
            (t, "unique_key", ["9"], ["3"], True, False),
            (t, "partial", ["2"], ["1"], False, True),
        ]
    ) == [
        "sending_message.by_tenant (served by outbox)",
        "sending_message.pattern_again (served by pattern)",
        "sending_message.plain_text (served by unique_key)",
    ]
