"""Checking anchors against the schemas of their sources (see :func:`~.loader.validate_against_sources`).

Columns are found by parsing each ``expr`` as Spark SQL with sqlglot; a bare-column ``expr`` is also
type-checked against the Arrow type of its column.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proml_lab.errors import DefinitionError
from proml_lab.features.loader import LoadedDefinition, default_locator
from proml_lab.features.spec import Anchor, Definition, Entity, Feature, Source

if TYPE_CHECKING:
    import pyarrow as pa


def check_anchors(
    items: list[LoadedDefinition],
    resolve_source_schema: Callable[[Source], pa.Schema | None],
    known: list[Definition],
) -> list[DefinitionError]:
    """Every problem found, in definition order (an empty list when all is well)."""
    sources = {d.name: LoadedDefinition(d, None, default_locator(d)) for d in known if isinstance(d, Source)}
    entities = {d.name: d for d in known if isinstance(d, Entity)}
    for item in items:
        if isinstance(item.definition, Source):
            sources[item.definition.name] = item
        elif isinstance(item.definition, Entity):
            entities[item.definition.name] = item.definition
    schemas: dict[str, pa.Schema | None] = {}
    errors: list[DefinitionError] = []
    for item in items:
        anchor = item.definition
        if not isinstance(anchor, Anchor) or anchor.source not in sources:
            continue
        src_item = sources[anchor.source]
        src: Source = src_item.definition  # type: ignore[assignment]
        if src.name not in schemas:
            schemas[src.name] = schema = resolve_source_schema(src)
            if schema is not None and _column(schema, src.timestamp_column) is None:
                errors.append(_unknown_column(
                    src.timestamp_column, src, schema, src_item, "timestamp_column", what="timestamp column"
                ))
        schema = schemas[src.name]
        if schema is None:
            continue
        entity = entities.get(anchor.entity)
        key = anchor.key or (entity.join_key if entity else None)
        if key and _column(schema, key) is None:
            errors.append(_unknown_column(key, src, schema, item, "key", what="key column"))
        for f in anchor.all_features:
            group = "features" if isinstance(f, Feature) else "aggregations"
            field = f"{group}[{f.name}].expr"
            expr = f.expression if isinstance(f, Feature) else f.expr  # a count may have no expr
            if expr is None:
                continue
            errors.extend(_check_expr(expr, f, src, schema, item, field, defaulted=f.expr is None))
    return errors


def _check_expr(
    expr: str, f: Any, src: Source, schema: pa.Schema, item: LoadedDefinition, field: str, *, defaulted: bool
) -> list[DefinitionError]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(expr, read="spark")
    except sqlglot.errors.SqlglotError as exc:
        info = getattr(exc, "errors", None) or [{}]
        first = info[0]
        near = ""
        if first.get("highlight"):
            near = f" (error near {first['highlight']!r} at column {first['col']})"
        return [DefinitionError(f"cannot parse Spark SQL expression {expr!r}{near}", file=item.file,
                                field=f"{item.locator}.{field}")]
    errors = []
    for col in tree.find_all(exp.Column):
        name = col.parts[0].name if col.parts else col.name
        if _column(schema, name) is None:
            err = _unknown_column(name, src, schema, item, field)
            if defaulted:
                err = DefinitionError(err.reason + "; 'expr' defaults to the feature name", file=err.file,
                                      field=err.field)
            errors.append(err)
    if not errors and isinstance(tree, exp.Column) and len(tree.parts) == 1:
        actual = _column(schema, tree.name)
        assert actual is not None  # checked above
        problem = _type_problem(f, actual.type)
        if problem:
            errors.append(DefinitionError(
                f"{problem}; column {actual.name!r} of source {src.name!r} is {actual.type}",
                file=item.file, field=f"{item.locator}.{field}",
            ))
    return errors


def _column(schema: pa.Schema, name: str) -> pa.Field | None:
    """The schema's field called ``name``, matched without case as Spark does by default."""
    for fld in schema:
        if fld.name == name:
            return fld
    low = name.lower()
    return next((fld for fld in schema if fld.name.lower() == low), None)


def _unknown_column(
    name: str, src: Source, schema: pa.Schema, item: LoadedDefinition, field: str, *, what: str = "column"
) -> DefinitionError:
    names = list(schema.names)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        hint = f"did you mean: {', '.join(close)}?"
    else:
        hint = "its columns: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return DefinitionError(
        f"{what} {name!r} is not in source {src.name!r} ({hint})",
        file=item.file, field=f"{item.locator}.{field}",
    )


def _type_problem(f: Any, dtype: pa.DataType) -> str | None:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    t = pa.types
    numeric = t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype) or t.is_boolean(dtype)
    if not isinstance(f, Feature):
        if f.function != "count" and not numeric:
            return f"function {f.function!r} needs a numeric or boolean column"
        return None
    if f.type in ("numeric", "binary") and not numeric:
        return f"type {f.type!r} needs a numeric or boolean column"
    textual = t.is_string(dtype) or t.is_large_string(dtype) or t.is_integer(dtype)
    if f.type in ("categorical", "text") and not textual:
        return f"type {f.type!r} needs a string or integer column"
    if f.type == "vector":
        if not (t.is_list(dtype) or t.is_large_list(dtype) or t.is_fixed_size_list(dtype)):
            return "type 'vector' needs a list column"
        if t.is_fixed_size_list(dtype) and dtype.list_size != f.dimension:
            return f"dimension {f.dimension} does not match the column's fixed size {dtype.list_size}"
    return None
