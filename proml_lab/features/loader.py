"""Load feature definitions from YAML and Python files, and check them against their sources.

A definitions *path* is a YAML file (``.yaml``/``.yml``), a Python file (``.py``) or a directory of
them (searched recursively, in sorted order). Every definition comes back as a :class:`LoadedDefinition`
that remembers its file and where in the file it was written, so later errors (the catalog's
cross-reference checks, :func:`validate_against_sources`) can point at the exact place.

YAML format: four optional top-level lists, one mapping per definition, with the fields of
:class:`~proml_lab.features.spec.Entity`, :class:`~proml_lab.features.spec.Source`,
:class:`~proml_lab.features.spec.Anchor` and :class:`~proml_lab.features.spec.DerivedFeature`
(the ``kind`` field is implied by the list)::

    entities:
      - {name: member, join_key: member_id}
    sources:
      - name: member_activity
        path: world/member_activity          # relative to the workspace lake
        timestamp_column: day
    anchors:
      - name: member_activity
        entity: member
        source: member_activity
        owner: growth-team
        tags: [activity]
        features:
          - {name: member_sessions, expr: sessions, type: numeric, description: Sessions that day}
        aggregations:
          - {name: member_jobViews_7d, expr: job_views, function: sum, window: 7d}
    derived:
      - {name: member_viewsPerSession, entity: member, function: ratio,
         inputs: [member_jobViews_7d, member_sessions]}

Python format: every module-level ``Entity``/``Source``/``Anchor``/``DerivedFeature`` object, and
every such object inside a module-level list or tuple, is collected (in the order the module defines
them). The file is imported from its path, with its folder on ``sys.path`` while it runs.

Errors are :class:`~proml_lab.errors.DefinitionError` naming the file and the field, e.g.
``defs.yaml, field anchors[member_activity].aggregations[member_jobViews_7d].window: expected a
duration such as '7d', '12h', '30m' or '2w'; got '7 days'``.

Examples
--------
>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "defs.yaml"
>>> _ = p.write_text("entities:\\n  - {name: member, join_key: member_id}\\n")
>>> [d.definition.name for d in load_definitions(p)]
['member']
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
import traceback
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from proml_lab.errors import DefinitionError
from proml_lab.features.spec import (
    Anchor,
    Definition,
    DerivedFeature,
    Entity,
    Feature,
    Source,
    WindowAggregation,
)

if typing.TYPE_CHECKING:
    import pyarrow as pa

SECTIONS: dict[str, type[BaseModel]] = {
    "entities": Entity,
    "sources": Source,
    "anchors": Anchor,
    "derived": DerivedFeature,
}
SECTION_OF_KIND = {"entity": "entities", "source": "sources", "anchor": "anchors", "derived": "derived"}
_DEFINITION_TYPES = (Entity, Source, Anchor, DerivedFeature)
_SUFFIXES = {".yaml", ".yml", ".py"}


class LoadedDefinition(NamedTuple):
    """A definition and where it was written.

    ``file`` is the path it was read from (``None`` when it was built in memory); ``locator`` names it
    inside the file: ``anchors[member_activity]`` in YAML, the variable (``ACTIVITY`` or
    ``ANCHORS[2]``) in Python.
    """

    definition: Definition
    file: str | None
    locator: str


def default_locator(definition: Definition) -> str:
    """``anchors[member_activity]``: how a definition not read from a file is named in errors."""
    return f"{SECTION_OF_KIND[definition.kind]}[{definition.name}]"


def as_loaded(item: Definition | LoadedDefinition) -> LoadedDefinition:
    """Wrap a bare definition so that every definition carries a (possibly empty) origin."""
    if isinstance(item, LoadedDefinition):
        return item
    if not isinstance(item, _DEFINITION_TYPES):
        raise DefinitionError(
            f"expected an Entity, Source, Anchor or DerivedFeature; got {type(item).__name__}"
        )
    return LoadedDefinition(item, None, default_locator(item))


def raise_first(errors: Sequence[DefinitionError]) -> None:
    """Raise the first error, with the others appended, so one run reports every problem."""
    if not errors:
        return
    first = errors[0]
    if len(errors) == 1:
        raise first
    more = "".join(f"\n  also: {e}" for e in errors[1:])
    raise DefinitionError(first.reason + more, file=first.file, field=first.field)


# -- loading ---------------------------------------------------------------------------------------
def load_definitions(path: str | Path | Sequence[str | Path]) -> list[LoadedDefinition]:
    """Read every definition under ``path`` (a file, a directory, or a list of them).

    Parameters
    ----------
    path
        A ``.yaml``/``.yml``/``.py`` file, a directory (searched recursively, sorted; hidden folders
        and ``__pycache__`` are skipped), or a sequence of those.

    Returns
    -------
    list[LoadedDefinition]
        In file order; an identical definition met twice (a Python file importing another) is kept once.

    Raises
    ------
    DefinitionError
        A file cannot be read or parsed, or a definition is invalid (names the file and the field).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.py").write_text(
    ...     "from proml_lab.features.spec import Entity\\n"
    ...     "MEMBER = Entity(name='member', join_key='member_id')\\n")
    >>> [(x.definition.name, x.locator) for x in load_definitions(d)]
    [('member', 'MEMBER')]
    """
    seen: set[tuple[str, str, str]] = set()
    out: list[LoadedDefinition] = []
    for file in _files(path):
        loader = _load_python if file.suffix == ".py" else _load_yaml
        for item in loader(file):
            key = (item.definition.kind, item.definition.name, item.definition.fingerprint())
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def _files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    if not isinstance(path, (str, Path)):
        return [f for p in path for f in _files(p)]
    p = Path(path).expanduser()
    if p.is_dir():
        return sorted(
            f
            for f in p.rglob("*")
            if f.is_file()
            and f.suffix in _SUFFIXES
            and not any(part.startswith(".") or part == "__pycache__" for part in f.relative_to(p).parts)
        )
    if not p.exists():
        raise DefinitionError("no such file or directory", file=str(p))
    if p.suffix not in _SUFFIXES:
        raise DefinitionError(
            f"unsupported file type {p.suffix!r}; definitions are .yaml, .yml or .py files", file=str(p)
        )
    return [p]


def _load_yaml(file: Path) -> list[LoadedDefinition]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.problem:
            context = f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise DefinitionError(
            f"{where}invalid YAML: {exc.problem or exc.context}{context}", file=str(file)
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(f"cannot read definitions: {exc}", file=str(file)) from None
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise DefinitionError(
            f"expected a mapping with keys {', '.join(SECTIONS)}; got {type(data).__name__}", file=str(file)
        )
    unknown = [str(k) for k in data if k not in SECTIONS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(SECTIONS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DefinitionError(
            f"unknown top-level key {unknown[0]!r}{hint}; allowed keys: {', '.join(SECTIONS)}",
            file=str(file),
        )
    out: list[LoadedDefinition] = []
    errors: list[DefinitionError] = []
    for section, model in SECTIONS.items():
        items = data.get(section) or []
        if not isinstance(items, list):
            errors.append(DefinitionError(
                f"expected a list of definitions; got {type(items).__name__}", file=str(file), field=section
            ))
            continue
        for i, raw in enumerate(items):
            locator = f"{section}[{_label(raw, i)}]"
            if not isinstance(raw, Mapping):
                errors.append(DefinitionError(
                    f"expected a mapping; got {type(raw).__name__}", file=str(file), field=locator
                ))
                continue
            try:
                definition: Any = model.model_validate(dict(raw))
                out.append(LoadedDefinition(definition, str(file), locator))
            except ValidationError as exc:
                errors.extend(_validation_errors(exc, model, raw, locator, str(file)))
    raise_first(errors)
    return out


def _load_python(file: Path) -> list[LoadedDefinition]:
    resolved = file.resolve()
    name = "proml_lab_definitions_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise DefinitionError("cannot import this file", file=str(file))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    sys.path.insert(0, str(resolved.parent))
    try:
        spec.loader.exec_module(module)
    except ValidationError as exc:
        sys.modules.pop(name, None)
        raise_first(_python_validation_errors(exc, resolved, str(file)))
    except DefinitionError:
        sys.modules.pop(name, None)
        raise
    except Exception as exc:  # any failure while importing user code is a definition error
        sys.modules.pop(name, None)
        where = _line_in(exc, resolved)
        raise DefinitionError(f"{where}cannot import: {type(exc).__name__}: {exc}", file=str(file)) from None
    finally:
        if str(resolved.parent) in sys.path:
            sys.path.remove(str(resolved.parent))
    out: list[LoadedDefinition] = []
    ids: set[int] = set()
    for var, value in vars(module).items():
        if var.startswith("__"):
            continue
        if isinstance(value, _DEFINITION_TYPES):
            found = [(value, var)]
        elif isinstance(value, (list, tuple)):
            found = [(v, f"{var}[{i}]") for i, v in enumerate(value) if isinstance(v, _DEFINITION_TYPES)]
        else:
            continue
        for definition, locator in found:
            if id(definition) not in ids:
                ids.add(id(definition))
                out.append(LoadedDefinition(definition, str(file), locator))
    return out


_MODELS_BY_TITLE: dict[str, type[BaseModel]] = {
    m.__name__: m for m in (*_DEFINITION_TYPES, Feature, WindowAggregation)
}


def _python_validation_errors(exc: ValidationError, resolved: Path, file: str) -> list[DefinitionError]:
    """A model built at import time failed: name the line, the model and the field."""
    where = _line_in(exc, resolved)
    model = _MODELS_BY_TITLE.get(exc.title)
    out = []
    for err in exc.errors():
        one = _one_error(err, model, None, exc.title, file)
        if one.field == exc.title:
            out.append(DefinitionError(f"{where}invalid {exc.title}: {one.reason}", file=file))
        else:
            out.append(DefinitionError(f"{where}{one.reason}", file=file, field=one.field))
    return out


def _line_in(exc: BaseException, file: Path) -> str:
    """``line 12: `` where the exception left ``file`` (the user's line), or nothing."""
    lines = [fr.lineno for fr in traceback.extract_tb(exc.__traceback__) if Path(fr.filename) == file]
    if isinstance(exc, SyntaxError) and exc.lineno:
        lines.append(exc.lineno)
    return f"line {lines[-1]}: " if lines else ""


# -- readable pydantic errors ----------------------------------------------------------------------
def _label(raw: Any, index: int) -> str:
    """An item's name when it has one (``member_activity``), else its position."""
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str) and raw["name"]:
        return raw["name"]
    return str(index)


def _validation_errors(
    exc: ValidationError, model: type[BaseModel] | None, raw: Any, locator: str, file: str
) -> list[DefinitionError]:
    errs = exc.errors()
    # a misspelt field ("ownr") also leaves the real one missing: report the misspelling only
    hinted: set[tuple[Any, Any]] = set()
    for err in errs:
        if err["type"] == "extra_forbidden":
            allowed = list((_model_at(model, err["loc"][:-1]) or BaseModel).model_fields)
            close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
            hinted.update((err["loc"][:-1], c) for c in close)
    return [_one_error(err, model, raw, locator, file) for err in errs
            if not (err["type"] == "missing" and (err["loc"][:-1], err["loc"][-1]) in hinted)]


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    for part in loc:
        if isinstance(part, str):
            model = _nested_model(model, part)
    return model


def _one_error(
    err: Mapping[str, Any], model: type[BaseModel] | None, raw: Any, locator: str, file: str
) -> DefinitionError:
    path, node, current = locator, raw, model
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{_label(node[part] if _indexable(node, part) else None, part)}]"
            node = node[part] if _indexable(node, part) else None
        else:
            if err["type"] == "extra_forbidden" and part == err["loc"][-1]:
                allowed = sorted(current.model_fields) if current else []
                allowed = [a for a in allowed if a != "kind"]
                close = difflib.get_close_matches(str(part), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return DefinitionError(
                    f"unknown field {part!r}{hint}; allowed fields: {', '.join(allowed)}",
                    file=file, field=path,
                )
            path += f".{part}"
            node = node.get(part) if isinstance(node, Mapping) else None
            current = _nested_model(current, str(part))
    return DefinitionError(_reason(err), file=file, field=path)


def _indexable(node: Any, i: int) -> bool:
    return isinstance(node, (list, tuple)) and 0 <= i < len(node)


def _nested_model(model: type[BaseModel] | None, field: str) -> type[BaseModel] | None:
    if model is None or field not in model.model_fields:
        return None
    stack = [model.model_fields[field].annotation]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        stack.extend(typing.get_args(t))
    return None


def _reason(err: Mapping[str, Any]) -> str:
    kind, msg = err["type"], str(err["msg"])
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        return (
            "a name starts with a letter and has only letters, digits and underscores; "
            f"got {err.get('input')!r}"
        )
    msg = msg.removeprefix("Value error, ")
    if kind in {"literal_error", "int_parsing", "float_parsing", "bool_parsing", "string_type",
                "greater_than_equal", "too_short", "int_type", "list_type", "tuple_type"}:
        msg = msg[0].lower() + msg[1:] + f"; got {err.get('input')!r}"
    return msg


# -- checking against the data ---------------------------------------------------------------------
def parquet_schema(source: Source, lake: Path) -> pa.Schema | None:
    """The Arrow schema of a Parquet source (hive partition columns included), else ``None``.

    ``None`` for table and SQL sources, remote URIs (``s3a://`` ...) and paths that do not exist yet
    (their data may be produced later).

    Examples
    --------
    >>> parquet_schema(Source(name="s", table="db.t", timestamp_column="ts"), Path(".")) is None
    True
    """
    if not source.path or "://" in source.path.removeprefix("file://"):
        return None
    import pyarrow.dataset as ds

    raw = source.path.removeprefix("file://")
    base = Path(raw) if Path(raw).is_absolute() else lake / raw
    globbed = [i for i, part in enumerate(base.parts) if any(ch in part for ch in "*?[")]
    if globbed:
        root = Path(*base.parts[: globbed[0]])
        matches = sorted(root.glob(str(Path(*base.parts[globbed[0]:]))))
        files = [str(f) for m in matches for f in ([m] if m.is_file() else sorted(m.rglob("*.parquet")))]
        if not files:
            return None
        return ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(root)).schema
    if not base.exists():
        return None
    return ds.dataset(str(base), format="parquet", partitioning="hive").schema


def validate_against_sources(
    loaded: Iterable[Definition | LoadedDefinition],
    *,
    resolve_source_schema: Callable[[Source], pa.Schema | None],
    known: Iterable[Definition] = (),
) -> None:
    """Check anchors against the schemas of their sources: columns exist and have fitting types.

    Checks every anchor whose source schema can be read: each column a feature's or aggregation's
    ``expr`` reads (parsed as Spark SQL) exists; the source's timestamp column and the anchor's key
    column exist; and when ``expr`` is a bare column, its type fits (numeric/binary: a numeric or
    boolean column; vector: a list column, of ``dimension`` elements when its size is fixed;
    categorical/text: strings or integers; aggregations other than ``count``: numeric).

    Parameters
    ----------
    loaded
        The definitions to check (usually from :func:`load_definitions`).
    resolve_source_schema
        Returns a source's schema, or ``None`` when it cannot be read (then its anchors are skipped);
        e.g. ``lambda s: parquet_schema(s, workspace.lake)``.
    known
        Sources and entities defined elsewhere (already in the catalog) that anchors may refer to.

    Raises
    ------
    DefinitionError
        For the first problem, with every other problem appended.

    Examples
    --------
    >>> validate_against_sources([], resolve_source_schema=lambda s: None)
    """
    from proml_lab.features._source_check import check_anchors

    raise_first(check_anchors([as_loaded(x) for x in loaded], resolve_source_schema, list(known)))
