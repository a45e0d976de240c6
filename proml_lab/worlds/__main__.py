"""``python -m proml_lab.worlds`` — the same commands as ``proml worlds``."""

from proml_lab.cli import run, worlds_app

run(worlds_app, prog_name="python -m proml_lab.worlds")
