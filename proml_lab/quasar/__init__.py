"""Quasar: the language a ranking model is written in (the authoring layer).

>>> from proml_lab.quasar import parse, to_source
>>> program = parse("ranked = ORDER DOCUMENTS BY score WITH DESC; RETURN ranked;")
>>> print(to_source(program), end="")
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
"""

from __future__ import annotations

from proml_lab.quasar.ast import Program
from proml_lab.quasar.check import CheckedProgram, check
from proml_lab.quasar.errors import QuasarError, QuasarSyntaxError
from proml_lab.quasar.ir import IR, compile
from proml_lab.quasar.printer import to_source
from proml_lab.quasar.syntax import parse

__all__ = [
    "IR", "CheckedProgram", "Program", "QuasarError", "QuasarSyntaxError", "check", "compile", "parse", "to_source",
]
