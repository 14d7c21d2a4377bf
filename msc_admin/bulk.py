"""Batch INSERTs on PostgreSQL as one short statement: ``INSERT … SELECT FROM unnest(…)``.

A batch (a scan's fifty bounces, their suppressions and feed entries) travels as one array per
column, bound apart from the statement in PostgreSQL's binary format (``%b``). The statement's
text is the same for any batch size, so the server parses it once and plans it fast, and our
side never quotes and escapes the batch's texts and raw messages into SQL (which, with Django's
``bulk_create``, was a third of ingestion's CPU time). Other databases use ``bulk_create``.

The statements every send and every batch repeat (these INSERTs, a send's claim and outcome,
``create`` of one row) are prepared once per connection (``statement_cursor``), so the server
parses and plans each of them once, not at every use.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection, models
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import signals
from django.db.models.base import ModelState


@contextmanager
def binding_cursor(*, prepared: bool = False) -> Iterator[CursorWrapper]:
    """A cursor whose parameters travel apart from the statement, in binary where marked
    ``%b``. Wrapped as Django wraps its own cursors, so execute wrappers and query logging see
    it.

    ``prepared``: each statement is prepared on the server the first time this connection runs
    it, and afterwards only bound and executed. For the few short statements every send and
    every batch repeats, parsing and planning cost the server more than running them (the
    claim's plan took longer than its execution). Django leaves automatic preparation off for
    the sake of transaction-mode connection poolers; this product connects to PostgreSQL
    directly, and only these cursors prepare, only when asked."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw_connection = connection.connection
    cls: type = ServerBindingCursor
    if prepared:
        if raw_connection.prepare_threshold is None:  # Django's "never": explicit only, then
            raw_connection.prepare_threshold = _ONLY_WHEN_ASKED
        cls = _preparing_cursor()
    raw = cls(raw_connection)
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    with wrapper(raw, connection) as cursor:
        yield cursor


# psycopg prepares a statement run this many times even unasked: never, in practice.
_ONLY_WHEN_ASKED = 2**31 - 1


@functools.cache
def _preparing_cursor() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("prepare", True)
            return super().execute(query, params, **kwargs)  # type: ignore[misc]

    return PreparingCursor


@contextmanager
def statement_cursor() -> Iterator[CursorWrapper]:
    """For a short statement that runs again and again (once per send, once per batch): on
    PostgreSQL a ``binding_cursor(prepared=True)``, elsewhere Django's own cursor. Parameters
    are ``%s`` or ``%(name)s``, as with Django's cursor."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    with binding_cursor(prepared=True) as cursor:
        yield cursor


def create[M: models.Model](model: type[M], **values: Any) -> M:
    """``model.objects.create(**values)``, on PostgreSQL as one prepared ``INSERT … RETURNING
    id``: the ORM compiled the statement anew for every row, a third of composing a message's
    CPU. The instance is built, its fields' ``pre_save`` run (``auto_now_add``) and their values
    prepared as the ORM does; a model with ``pre_save``/``post_save`` receivers goes through
    the ORM, which sends them."""
    if (
        connection.vendor != "postgresql"
        or signals.pre_save.has_listeners(model)
        or signals.post_save.has_listeners(model)
    ):
        return model._default_manager.create(**values)
    instance = model(**values)
    fields = _insertable(model)
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    with statement_cursor() as cursor:
        cursor.execute(_create_sql(model), params)
        (pk,) = cursor.fetchone()
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


@functools.cache
def _insertable(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@functools.cache
def _create_sql(model: type[models.Model]) -> str:
    meta = model._meta
    names = ", ".join(f'"{field.column}"' for field in _insertable(model))
    marks = ", ".join(["%s"] * len(_insertable(model)))
    # Names from the model, values bound: nothing from outside.
    return f'INSERT INTO {meta.db_table} ({names}) VALUES ({marks}) RETURNING "{meta.pk.column}"'  # noqa: S608


def insert(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: str = "",
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (values in the order of ``fields``, attribute names) in one statement.

    ``conflict`` is the target of an ``ON CONFLICT … DO NOTHING`` (e.g. ``"(tenant_id,
    address)"``), ``returning`` the attribute names to return for each row inserted. Rows go
    in the order given: callers that may meet another writer sort them by the conflict key, so
    two overlapping batches wait for each other instead of deadlocking."""
    if not rows:
        return []
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    arrays: list[list[Any]] = []
    for index, field in enumerate(columns):
        values = [row[index] for row in rows]
        if isinstance(field, models.JSONField):
            values = [json.dumps(value) for value in values]
        arrays.append(values)
    with binding_cursor(prepared=True) as cursor:
        cursor.execute(_sql(model, tuple(fields), conflict, tuple(returning)), arrays)
        return cursor.fetchall() if returning else []


@functools.cache
def _sql(
    model: type[models.Model], fields: tuple[str, ...], conflict: str, returning: tuple
) -> str:
    meta = model._meta
    selected, arrays = [], []
    for index, name in enumerate(fields):
        field = meta.get_field(name)
        if isinstance(field, models.JSONField):  # sent as text, stored as jsonb
            selected.append(f"c{index}::jsonb")
            arrays.append("%b::text[]")
        else:
            selected.append(f"c{index}")
            kind = str(field.db_type(connection)).split("(")[0]  # varchar(12) -> varchar
            arrays.append(f"%b::{kind}[]")
    names = [str(meta.get_field(name).column) for name in fields]  # type: ignore[union-attr]
    sql = (  # names and types from the model, values bound: nothing from outside
        f"INSERT INTO {meta.db_table} ({', '.join(names)})"  # noqa: S608
        f" SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)})"
        f" AS t({', '.join(f'c{i}' for i in range(len(fields)))})"
    )
    if conflict:
        sql += f" ON CONFLICT {conflict} DO NOTHING"
    if returning:
        back = [str(meta.get_field(name).column) for name in returning]  # type: ignore[union-attr]
        sql += f" RETURNING {', '.join(back)}"
    return sql


@functools.cache
def columns(model: type[models.Model], alias: str) -> str:
    """The model's columns, in ``instances``' order, qualified by a table alias: for a
    statement whose rows ``instances`` turns into models."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def instance(model: type[models.Model], values: Sequence[Any]) -> models.Model | None:
    """A model from a row's ``columns(model, …)`` values, converted as the ORM converts them
    (JSON text to objects, say), or None for a row a LEFT JOIN did not find."""
    fields, converters = _converters(model)
    if values[0] is None:  # the primary key: no row
        return None
    row = list(values)
    for index, expression, functions in converters:
        for convert in functions:
            row[index] = convert(row[index], expression, connection)
    return model.from_db(connection.alias, fields, row)


def loaded[M: models.Model](
    model: type[M], attnames: Sequence[str], rows: Iterable[Sequence[Any]]
) -> list[M]:
    """``model.from_db`` of each row (values in ``attnames``' order, already Python values; the
    fields not named are deferred), without ``Model.__init__``: it walks every field of the
    model and sets each through its descriptor, about 10 µs a model for a message's 38 fields,
    the largest Python cost of a batch of bounces after parsing. An instance is its field
    values in ``__dict__`` (a deferred field is one absent from it) and its ``_state``, which
    is what this makes. A model with ``pre_init``/``post_init`` receivers (which ``__init__``
    sends) goes through ``from_db``."""
    alias = connection.alias
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return [model.from_db(alias, list(attnames), row) for row in rows]
    out = []
    for row in rows:
        instance = object.__new__(model)
        state = instance._state = ModelState()
        state.adding = False
        state.db = alias
        instance.__dict__.update(zip(attnames, row, strict=True))
        out.append(instance)
    return out


@functools.cache
def _converters(model: type[models.Model]) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    concrete = model._meta.concrete_fields
    found = []
    for index, field in enumerate(concrete):
        expression = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(expression) + field.get_db_converters(
            connection
        )
        if functions:
            found.append((index, expression, functions))
    return [field.attname for field in concrete], found
