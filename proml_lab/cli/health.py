"""``proml health ...``: keep models healthy from the command line (and from cron / papermill).

``check`` runs the authoring checks on a program; ``consistency`` compares online with offline feature
values and exits 1 when an alert fires, so a scheduler notices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, print_json, workspace

app = typer.Typer(help="Health assurance: authoring checks, offline/online consistency, drift, anomalies.",
                  no_args_is_help=True)


@app.command("check")
def check(
    program: Annotated[Path, typer.Argument(help="A .quasar program.", exists=True, dir_okay=False)],
    data: Annotated[str | None, typer.Option("--data", help="Training table under the lake whose time range "
                                             "is the window to cover (default: TRAINING CONFIG training_data).")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check every feature PROGRAM reads: in the catalog, online, fresh, covered offline. Exit 1 on errors."""
    from proml_lab.health.checks import authoring_checks

    report = authoring_checks(workspace(home, create=False), program, training_data=data)
    if as_json:
        print_json(report.to_dict())
    else:
        print_check_report(report)
    if not report.ok:
        raise typer.Exit(1)


def print_check_report(report: Any, *, to: Any = None) -> None:
    """A check report: its summary line, then each problem and its fix on lines of their own (commands
    are never wrapped, so they can be copied)."""
    out = to or console
    out.print(escape(report.summary()), highlight=False, soft_wrap=True)
    for p in report.problems:
        colour = "red" if p.severity == "error" else "yellow"
        out.print(f"[{colour}]{p.severity}[/] {escape(p.feature)} ({p.check}): {escape(p.message)}",
                  highlight=False, soft_wrap=True)
        out.print(f"    fix: {escape(p.fix)}", highlight=False, soft_wrap=True)


@app.command("consistency")
def consistency(
    entity: Annotated[list[str] | None, typer.Option("--entity", help="Only this entity (repeatable; default: "
                                                     "every entity with online anchors).")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Keys sampled per entity.")] = 1000,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST each alert to this URL.")] = None,
    tolerance: Annotated[float, typer.Option(help="Absolute and relative tolerance for numbers.")] = 1e-6,
    seed: Annotated[int, typer.Option(help="Seed of the key sample.")] = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare sampled online feature values with the offline ones; record alerts; exit 1 if any fires."""
    from proml_lab.health.consistency import run_consistency_job

    reports = run_consistency_job(workspace(home, create=False), entities=entity or None, sample=sample,
                                  webhook=webhook, tolerance=tolerance, seed=seed)
    if as_json:
        print_json([r.to_dict() for r in reports])
    else:
        for report in reports:
            verdict = "ok" if report.ok else f"ALERT on {', '.join(report.failing)}"
            console.print(f"{report.entity}: {verdict}", highlight=False, soft_wrap=True)
            table = Table(title_justify="left")
            for column in ("feature", "sampled", "match", "mismatch", "only offline", "only online", "rate",
                           "distance", "status"):
                table.add_column(column, justify="left" if column in ("feature", "status") else "right")
            for r in report.table.itertuples(index=False):
                colour = {"alert": "red", "warn": "yellow"}.get(r.status, "green")
                table.add_row(r.feature, str(r.sampled), str(r.match), str(r.mismatch), str(r.only_offline),
                              str(r.only_online), f"{r.mismatch_rate:.2%}",
                              "" if r.distance != r.distance else f"{r.distance:.4f}", f"[{colour}]{r.status}[/]")
            console.print(table)
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


# -- monitoring and anomalies (proml_lab.health.monitor) ---------------------------------------------------
@app.command("monitor")
def monitor_command(
    model: Annotated[str, typer.Argument(help="Registered, deployed model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Serving alias whose exposures count.")] = "champion",
    window: Annotated[str, typer.Option("--window", help="Serving window: 1d, 12h, 7d ...")] = "1d",
    end: Annotated[str | None, typer.Option("--end", help="End of the window (UTC; default: now).")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST each alert to this URL.")] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="Then retrain if MODEL's retraining policy says "
                                          "so (thresholds, cooldown, max per day): `proml retrain`.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drift of MODEL's serving window against its training snapshot; record alerts; exit 1 if any fires.
    With --retrain (what a cron job runs) a crossed policy threshold retrains MODEL via papermill."""
    from proml_lab.health.alerts import Webhook
    from proml_lab.health.monitor import monitor, record_health_alerts

    ws = workspace(home, create=False)
    report = monitor(ws, model, alias=alias, window=window, end=end)
    ids = record_health_alerts(ws, report, webhook=Webhook(webhook) if webhook else None)
    retrained = None
    if retrain:
        from proml_lab.health.retrain import retrain_if_needed

        retrained = retrain_if_needed(ws, model, report.measures)
    if as_json:
        print_json({**report.to_dict(), "alert_ids": ids,
                    "retrain": None if retrained is None else {"status": retrained.status,
                                                               "reasons": retrained.reasons,
                                                               "version": retrained.version,
                                                               "error": retrained.error}})
    else:
        state = "[green]healthy[/]" if report.ok else f"[red]{len(report.alerts)} alert(s)[/]"
        table = Table(title=f"{escape(model)}@{escape(alias)} v{report.version} · {report.start:%Y-%m-%d %H:%M}"
                            f" → {report.end:%Y-%m-%d %H:%M} UTC · {state}", title_justify="left")
        for column in ("feature", "kind", "measure", "value", "status"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for r in report.drift.itertuples(index=False):
            colour = {"alert": "red", "warn": "yellow"}.get(r.status, "green")
            table.add_row(escape(str(r.feature)), r.kind, r.measure, f"{r.value:.4f}", f"[{colour}]{r.status}[/]")
        console.print(table)
        for note in report.notes:
            console.print(f"[dim]{escape(note)}[/]", highlight=False)
        if retrained is not None:
            console.print(f"retrain: {retrained.status} ({'; '.join(retrained.reasons) or retrained.error or ''})",
                          highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command("anomalies")
def anomalies_command(
    model: Annotated[str | None, typer.Argument(help="Only this model's metrics (and detect on its logs).")] = None,
    detect: Annotated[bool, typer.Option("--detect", help="Run the detectors on the serving logs (and the "
                                         "world's business metrics) first.")] = False,
    label: Annotated[tuple[int, str] | None, typer.Option("--label", metavar="ID LABEL", help="Label anomaly ID "
                     "(true_anomaly, expected, new_trend, false_positive, unknown) and tune its metric.")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST new anomalies to this URL.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many.")] = 50,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List recorded anomalies (newest first); --detect finds new ones, --label gives feedback."""
    from proml_lab.health.alerts import AnomalyStore, Webhook
    from proml_lab.health.monitor import detect_anomalies

    ws = workspace(home, create=False)
    store = AnomalyStore(ws)
    tuned = None
    if label is not None and label[0] is not None:
        store.label(label[0], label[1])
        metric = store.list().set_index("id").loc[int(label[0]), "metric"]
        tuned = store.tune(metric)
    if detect:
        detect_anomalies(ws, model, webhook=Webhook(webhook) if webhook else None)
    frame = store.list()
    if model is not None:
        frame = frame[frame["metric"].str.startswith(f"{model}.")]
    frame = frame.head(limit)
    columns = ["id", "metric", "detector", "ts", "value", "expected", "direction", "severity", "label"]
    if as_json:
        print_json({"tuned": tuned, "anomalies": frame[columns].assign(ts=frame["ts"].astype(str))
                    .to_dict("records")})
        return
    if tuned is not None:
        console.print(f"{escape(tuned['metric'])}: sensitivity {tuned['before']:.3g} → {tuned['after']:.3g}")
    table = Table(title=f"{len(frame)} anomal{'y' if len(frame) == 1 else 'ies'}", title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in ("id", "value", "expected", "severity") else "left")
    for r in frame.itertuples(index=False):
        table.add_row(str(r.id), escape(r.metric), r.detector, f"{r.ts:%Y-%m-%d %H:%M}", f"{r.value:.4g}",
                      f"{r.expected:.4g}", r.direction, f"{r.severity:.2f}", r.label)
    console.print(table)
