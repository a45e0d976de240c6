"""REST handlers of the ProML server extension, under ``<base_url>/proml/``.

Thin adapters (STYLE habit 13): each verb parses its query, calls one core function and writes JSON.

- ``GET proml/features?q=&entity=&type=&limit=``: Feature Marketplace search (each hit with its
  ``INPUT ...;`` reference for a ``%%quasar`` cell)
- ``GET proml/features/<name>``: one feature described (404 with a JSON message when unknown)
- ``GET proml/models``: tracked MLflow runs with their metrics
- ``GET proml/models/compare?a=<run>&b=<run>``: Metric | a | b | Lift of two runs
- ``GET proml/templates``: the new-model templates (name, kind, description, text)
- ``GET proml/registry``: the registered models (MLflow Model Registry), each with its versions newest first
- ``POST proml/registry/publish`` ``{"run_id", "name"?, "alias"?}``: publish a run's bundle; 201 + the version
- ``POST proml/registry/alias`` ``{"name", "alias", "version"}``: point an alias at a version; the version
- ``GET proml/experiments?model=&status=``: the A/B experiments (definitions: status, traffic, arms ...)
- ``GET proml/experiments/<name>?alpha=``: one experiment's report (definition, per-arm units, decision, SRM,
  per-metric lifts with CIs), ``experiment_report(...).to_dict()``; 404 with a JSON message when unknown

Every verb needs an authenticated user; no workspace answers 503 with a JSON message; a core error
(:class:`ProMLError`) answers 400 with its message as JSON (404 when it is a failed lookup, a ``KeyError``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from proml_lab.errors import ProMLError

__all__ = ["setup_handlers"]


def _json_safe(value: Any) -> Any:
    """NaN / inf become ``null`` (JSON has no NaN); timestamps become ISO text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class _ProMLHandler(APIHandler):
    """Base: the workspace comes from the extension's settings; core errors become 4xx JSON."""

    def initialize(self, workspace: Any) -> None:
        self._workspace = workspace

    @property
    def workspace(self) -> Any:
        from proml_lab.errors import WorkspaceError

        try:
            return self._workspace()
        except WorkspaceError as exc:  # no workspace yet: say so (JSON), not a 500 with a traceback
            raise tornado.web.HTTPError(503, str(exc)) from exc

    def reply(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_json_safe(data), default=str))

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.reply({"message": message})


class FeaturesHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        try:
            limit = int(self.get_query_argument("limit", "20"))
        except ValueError:
            return self.fail(400, "limit must be an integer")
        from proml_lab.lab.widgets import feature_reference

        store = self.workspace.features
        hits = store.search(
            self.get_query_argument("q", ""),
            entity=self.get_query_argument("entity", None) or None,
            type=self.get_query_argument("type", None) or None,
            limit=limit,
        )
        self.reply({"features": [
            {"name": h.name, "entity": h.entity, "type": h.type, "description": h.description,
             "owner": h.owner, "tags": list(h.tags), "online": h.online, "score": h.score,
             "reference": feature_reference(store.catalog.feature(h.name))}
            for h in hits
        ]})


class FeatureHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self, name: str) -> None:
        from proml_lab.errors import UnknownFeatureError

        try:
            info = self.workspace.features.describe(name)
        except UnknownFeatureError as exc:
            return self.fail(404, str(exc))
        self.reply(info)


def _runs(workspace: Any) -> list[dict[str, Any]]:
    from proml_lab.training.tracking import Tracker

    return Tracker(workspace).run_records()


class ModelsHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.reply({"models": _runs(self.workspace)})


class CompareHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from proml_lab.training.compare import compare_runs

        a, b = self.get_query_argument("a", ""), self.get_query_argument("b", "")
        if not a or not b:
            return self.fail(400, "pass two run ids: ?a=<run>&b=<run>")
        records = _runs(self.workspace)
        missing = [x for x in (a, b) if x not in {r["id"] for r in records}]
        if missing:
            return self.fail(404, f"unknown run id(s): {', '.join(missing)}")
        try:
            result = compare_runs(records, a, b)
        except ProMLError as exc:
            return self.fail(400, str(exc))
        self.reply({**result.to_dict(), "runs": [a, b], "rows": result.rows()})


class TemplatesHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from proml_lab.templates import list_templates

        try:
            found = list_templates()
        except ProMLError as exc:  # an installation without its templates: say so, not "no templates"
            return self.fail(503, str(exc))
        self.reply({"templates": [
            {"name": t.name, "kind": t.kind, "description": t.description,
             "text": t.path.read_text(encoding="utf-8")}
            for t in found
        ]})


def _registry(workspace: Any) -> Any:
    from proml_lab.deploy.registry import ModelRegistry

    return ModelRegistry(workspace)


def _status(exc: ProMLError) -> int:
    """404 for an unknown name (the errors that are also ``KeyError``s), else 400."""
    return 404 if isinstance(exc, KeyError) else 400


class _JSONPostHandler(_ProMLHandler):
    """A POST taking a JSON object; the listed fields are required strings, the others optional ones."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def fields(self) -> dict[str, str | None]:
        """The body's fields (``None`` when absent or empty); a missing required one is a 400."""
        body = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        names = self.required + self.optional
        values = {k: (None if body.get(k) in (None, "") else str(body[k])) for k in names}
        missing = [k for k in self.required if values[k] is None]
        if missing:
            raise tornado.web.HTTPError(400, f"missing field(s): {', '.join(missing)}")
        return values


class RegistryHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        try:
            models = _registry(self.workspace).models()
        except ProMLError as exc:
            return self.fail(_status(exc), str(exc))
        self.reply({"models": models})


class PublishHandler(_JSONPostHandler):
    required = ("run_id",)
    optional = ("name", "alias", "description")

    @tornado.web.authenticated
    def post(self) -> None:
        f = self.fields()
        try:
            version = _registry(self.workspace).publish(f["run_id"], name=f["name"], alias=f["alias"],
                                                        description=f["description"])
        except ProMLError as exc:
            return self.fail(_status(exc), str(exc))
        self.set_status(201)
        self.reply(version.to_dict())


class AliasHandler(_JSONPostHandler):
    required = ("name", "alias", "version")

    @tornado.web.authenticated
    def post(self) -> None:
        f = self.fields()
        try:
            version = _registry(self.workspace).set_alias(f["name"], f["alias"], f["version"])
        except ProMLError as exc:
            return self.fail(_status(exc), str(exc))
        self.reply(version.to_dict())


class ExperimentsHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from proml_lab.experiments.store import ExperimentStore

        model = self.get_query_argument("model", None) or None
        status = self.get_query_argument("status", None) or None
        try:
            found = ExperimentStore(self.workspace).list(model=model, status=status)
        except ProMLError as exc:
            return self.fail(_status(exc), str(exc))
        self.reply({"experiments": [e.to_dict() for e in found]})


class ExperimentHandler(_ProMLHandler):
    @tornado.web.authenticated
    def get(self, name: str) -> None:
        from proml_lab.experiments.report import experiment_report
        from proml_lab.experiments.store import ExperimentStore

        try:
            alpha = float(self.get_query_argument("alpha", "0.05"))
        except ValueError:
            return self.fail(400, "alpha must be a number in (0, 1)")
        try:
            ExperimentStore(self.workspace).get(name)  # unknown: 404, the message lists the known names
        except ProMLError as exc:
            return self.fail(404, str(exc))
        try:
            report = experiment_report(self.workspace, name, alpha=alpha)
        except ProMLError as exc:
            return self.fail(_status(exc), str(exc))
        self.reply(report.to_dict())


def setup_handlers(web_app: Any, workspace: Any) -> list[str]:
    """Add the handlers to ``web_app`` under its ``base_url``; ``workspace`` is a callable returning one.

    Returns the URL patterns added.
    """
    base = url_path_join(web_app.settings["base_url"], "proml")
    routes = [
        (url_path_join(base, "features"), FeaturesHandler),
        (url_path_join(base, "features", r"([^/]+)"), FeatureHandler),
        (url_path_join(base, "models"), ModelsHandler),
        (url_path_join(base, "models", "compare"), CompareHandler),
        (url_path_join(base, "templates"), TemplatesHandler),
        (url_path_join(base, "registry"), RegistryHandler),
        (url_path_join(base, "registry", "publish"), PublishHandler),
        (url_path_join(base, "registry", "alias"), AliasHandler),
        (url_path_join(base, "experiments"), ExperimentsHandler),
        (url_path_join(base, "experiments", r"([^/]+)"), ExperimentHandler),
    ]
    web_app.add_handlers(".*$", [(pattern, handler, {"workspace": workspace}) for pattern, handler in routes])
    return [pattern for pattern, _ in routes]
