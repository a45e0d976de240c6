"""``python -m proml_lab.worlds`` — the same commands as ``proml worlds``."""

from proml_lab.cli import ProMLError, err_console, worlds_app

try:
    worlds_app(prog_name="python -m proml_lab.worlds")
except ProMLError as exc:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise SystemExit(1) from None
