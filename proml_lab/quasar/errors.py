"""Errors of the Quasar language: one root, :class:`QuasarError`, with a location in the program.

Every Quasar error prints the same way, like a compiler diagnostic::

    <quasar>:4:58: syntax error: expected ']' or ',' but found ')'
        [ "", "cosine", {"type": "SPARSE", "indexMap": "DYNAMIC"});
                                                             ^

Later stages (the checker, the IR builder) raise their own subclasses and set :attr:`QuasarError.kind`
so the header names the stage ("type error", ...), while the fields stay the same.
"""

from __future__ import annotations

from typing import Any

from proml_lab.errors import ProMLError

__all__ = [
    "QuasarError",
    "QuasarNameError",
    "QuasarParamError",
    "QuasarScopeError",
    "QuasarStateError",
    "QuasarSyntaxError",
    "QuasarTypeError",
    "caret_excerpt",
]


def caret_excerpt(source_line: str, column: int) -> str:
    """Return *source_line* and a caret under 1-based *column*, both indented by four spaces.

    Tabs before the column are kept in the caret line so that the caret lines up in a terminal.

    Examples
    --------
    >>> print(caret_excerpt("double x = @;", 12))
        double x = @;
                   ^
    """
    prefix = "".join("\t" if ch == "\t" else " " for ch in source_line[: max(column - 1, 0)])
    return f"    {source_line}\n    {prefix}^"


class QuasarError(ProMLError):
    """Root of every error about a Quasar program; carries where in the program it happened.

    Parameters
    ----------
    message : str
        What is wrong, without the location (``"expected ';' but found ')'"``).
    filename : str, optional
        Name shown in the header; ``parse`` uses ``"<quasar>"`` unless told otherwise.
    line, column : int, optional
        1-based position of the problem.
    source_line : str, optional
        The text of that line, shown with a caret under *column*.

    Examples
    --------
    >>> err = QuasarError("something is off", filename="m.quasar", line=2, column=3, source_line="a b c")
    >>> print(err)
    m.quasar:2:3: error: something is off
        a b c
          ^
    """

    #: Word(s) in the header naming the stage that found the problem.
    kind: str = "error"

    def __init__(
        self,
        message: str,
        *,
        filename: str = "<quasar>",
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line

    def __str__(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.kind}: {self.message}"
        if self.source_line is not None and self.column is not None:
            text += "\n" + caret_excerpt(self.source_line, self.column)
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only fields would otherwise be lost when the error crosses a process boundary
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[QuasarError], state: dict[str, Any]) -> QuasarError:
    """Recreate a pickled error without calling its ``__init__``."""
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class QuasarSyntaxError(QuasarError):
    """The program text does not follow the Quasar grammar (or a rule the parser enforces).

    Parameters
    ----------
    message : str
        What is wrong, e.g. ``"expected ']' or ',' but found ')'"``.
    line, column : int
        1-based position of the offending text.
    source_line : str
        The text of that line.
    expected : tuple of str
        Readable names of what the parser would have accepted there (``"']'"``, ``"a name"``,
        ``"an expression"``), in the order they are listed in the message; empty when the problem
        is not about a missing token.
    filename : str
        Name shown in the header.

    Examples
    --------
    >>> from proml_lab.quasar import parse
    >>> try:
    ...     parse("RETURN ranked")
    ... except QuasarSyntaxError as err:
    ...     print(err)
    <quasar>:1:14: syntax error: missing ';' at end of statement
        RETURN ranked
                     ^
    """

    kind = "syntax error"

    def __init__(
        self,
        message: str,
        line: int,
        column: int,
        source_line: str,
        expected: tuple[str, ...] = (),
        filename: str = "<quasar>",
    ) -> None:
        super().__init__(message, filename=filename, line=line, column=column, source_line=source_line)
        self.expected = tuple(expected)


class QuasarNameError(QuasarError):
    """A name the program uses is not known: a feature, a node, an operator or an override target."""

    kind = "name error"


class QuasarTypeError(QuasarError):
    """A value's type does not fit where it is used; the message names both types."""

    kind = "type error"


class QuasarScopeError(QuasarError):
    """A value has the wrong scope (request < member < document; lists) for where it is used."""

    kind = "scope error"


class QuasarParamError(QuasarError):
    """An operator's parameter is unknown or has a value outside what the operator allows."""

    kind = "parameter error"


class QuasarStateError(QuasarError):
    """A trainable node is asked to score before it has learned state."""

    kind = "state error"
