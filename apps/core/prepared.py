"""Hot queries compiled once per process and database, then run with a new parameter.

Compiling a queryset costs far more CPU than running it: the device link's read of a device with
its team, application and targets (``select_related``, deferred bulk fields) took 3.2 ms per call
on PostgreSQL, 0.2 ms of which was the database (RELIABILITY family 25: 1000 devices connecting
at once, then a heartbeat each every 15 s). ``PreparedQuery`` compiles the queryset the first time
with a sentinel in place of its one parameter and keeps the SQL, the converters and the
``select_related`` populators; each call binds the real value, runs the SQL on the current
thread's connection and builds the objects exactly as ``QuerySet.__iter__`` does (Django's own
``from_db`` and related populators), so instances, deferred fields and related caches behave like
any other.

Only for querysets with exactly one parameter whose value cannot change the SQL (an equality on
a column). The cache is per database alias and vendor, built once under a lock. ``save_fields``
and ``insert_row`` do the same for the link's UPDATE of a device and its append-only history
and heartbeat rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from django.db import connections
from django.db.models import Field, Model, QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # public in Django, not in its stubs

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    position: int  # the parameter's index in the SQL's params
    params: tuple[Any, ...]
    converters: list[tuple[int, tuple[list[Callable[..., Any]], Any]]]
    model: type[Model]
    init_list: list[str]
    start: int
    end: int
    populators: list[Any]


class PreparedQuery(Generic[M]):
    """``build(sentinel)`` returns the queryset; ``first(value)`` is ``build(value).first()``
    and ``all(value)`` is ``list(build(value))``, without the compilation and unordered."""

    def __init__(self, build: Callable[[Any], QuerySet[M]], sentinel: Any) -> None:
        self._build, self._sentinel = build, sentinel
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, alias: str) -> _Compiled:
        queryset = self._build(self._sentinel).order_by()
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        positions = [index for index, value in enumerate(params) if value == self._sentinel]
        if len(positions) != 1:
            raise ValueError(f"a prepared query needs its sentinel exactly once, got {params!r}")
        select, klass_info = compiler.select, compiler.klass_info
        fields = [column[0] for column in select[: compiler.col_count]]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        return _Compiled(
            sql=sql,
            position=positions[0],
            params=tuple(params),
            converters=list(compiler.get_converters(fields).items()),
            model=klass_info["model"],
            init_list=[column[0].target.attname for column in select[start:end]],
            start=start,
            end=end,
            populators=get_related_populators(klass_info, select, alias),
        )

    def first(self, value: Any, using: str = "default") -> M | None:
        found = self._run(value, using, many=False)
        return found[0] if found else None

    def all(self, value: Any, using: str = "default") -> list[M]:
        return self._run(value, using, many=True)

    def _run(self, value: Any, using: str, *, many: bool) -> list[M]:
        connection = connections[using]
        key = (using, connection.vendor)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(using)
                self._compiled[key] = compiled
        params = list(compiled.params)
        params[compiled.position] = value
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall() if many else [cursor.fetchone()]
        found: list[M] = []
        for raw in rows:
            if raw is None:
                continue
            row = list(raw)
            for position, (converters, expression) in compiled.converters:
                for converter in converters:
                    row[position] = converter(row[position], expression, connection)
            obj: M = compiled.model.from_db(  # type: ignore[assignment]  # the queryset's model
                using, compiled.init_list, row[compiled.start : compiled.end]
            )
            for populator in compiled.populators:
                populator.populate(row, obj)
            found.append(obj)
        return found


_updates: dict[tuple[str, tuple[str, ...], str, str], str] = {}


def save_fields(instance: Model, fields: Iterable[str], using: str = "default") -> None:
    """``instance.save(update_fields=fields)`` without compiling an UPDATE each time: the SQL of
    each (model, fields) pair is built once. ``auto_now`` fields get the time as in ``save``;
    no signals are sent (the models saved here have no receivers)."""
    meta = instance._meta
    connection = connections[using]
    names = tuple(fields)
    columns = [cast("Field[Any, Any]", meta.get_field(name)) for name in names]
    key = (meta.label, names, using, connection.vendor)
    sql = _updates.get(key)
    if sql is None:
        # Names come from the model's own metadata, quoted; every value is a parameter.
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(str(field.column))} = %s" for field in columns)
        table, pk = quote(meta.db_table), quote(str(meta.pk.column))
        sql = _updates[key] = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608
    values = [
        field.get_db_prep_save(field.pre_save(instance, False), connection) for field in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, instance.pk])


_inserts: dict[tuple[str, str, str], tuple[str, list[Field[Any, Any]]]] = {}


def insert_row(instance: Model, using: str = "default") -> None:
    """``instance.save()`` of a new row without compiling an INSERT each time: the SQL of each
    model is built once. For append-only rows nobody reads back at once: the instance's pk
    stays unset, no signals are sent, field defaults and ``auto_now_add`` apply as in ``save``."""
    meta = instance._meta
    connection = connections[using]
    key = (meta.label, using, connection.vendor)
    prepared = _inserts.get(key)
    if prepared is None:
        columns = [
            field
            for field in meta.concrete_fields
            if not (field.primary_key and getattr(field, "db_returning", False))
        ]
        # Names come from the model's own metadata, quoted; every value is a parameter.
        quote = connection.ops.quote_name
        names = ", ".join(quote(str(field.column)) for field in columns)
        marks = ", ".join("%s" for _ in columns)
        sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({marks})"  # noqa: S608
        prepared = _inserts[key] = (sql, columns)
    sql, columns = prepared
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
