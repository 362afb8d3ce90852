"""The selection language: a small, safe query language over notices and batches.

A query such as ``status = failed AND age(finished_at) < 2h AND chunk IN (57866, 57900..57910)`` is parsed
by a LALR grammar (lark) and compiled into a SQLAlchemy Core boolean expression. User text only ever
becomes bound parameters, never SQL text; all time arithmetic is done in Python so SQLite and PostgreSQL
agree. The same compile path serves both targets; only the table of fields differs.

Syntax summary (keywords are case-insensitive):

* comparisons ``= == != <> < <= > >=``; ``AND``, ``OR``, ``NOT``, parentheses
* ``f IN (v1, v2, 3..7)``, ``f IN 3..7`` (inclusive integer ranges), ``f NOT IN (...)``
* ``f BETWEEN a AND b``, ``f NOT BETWEEN a AND b``
* ``f GLOB 'step2_*'`` (``*`` any run, ``?`` one character, ``\\`` makes the next one literal) and
  ``f LIKE 'x%'`` (``%``, ``_``, ``\\``): text fields only, case-sensitive on both backends
* ``f IS NULL``, ``f IS NOT NULL``; a bool field alone means ``f = true``
* literals: ``'text'`` or ``"text"`` with backslash escapes (``\\\\ \\' \\" \\n \\t \\r``; any other
  backslash is kept), numbers (``42``, ``-1.5``, ``1e6``), ``true``/``false``, times (``'2026-11-23'``,
  ``'2026-11-23T10:00:00'``, ``now()``, ``now() - 2h``, ``'2026-11-23' + 1d``)
* durations ``30s``, ``15m`` or ``15min``, ``2h``, ``3d``, ``1w`` (fractions allowed: ``1.5h``; units
  ignore case)
* ``age(f)`` for a time field f: ``age(started_at) > 30min`` means ``started_at < now - 30min``
* an empty query, ``*`` or ``all`` selects everything

Comparisons follow SQL: a NULL value satisfies neither ``f = x`` nor ``f != x``; use ``IS NULL``.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import DateTime, String, TypeEngine

from loader_assets.catalog.schema import NOTICE_STATUSES, batches, notices
from loader_assets.problems import BadInput

__all__ = [
    "BATCH_FIELDS",
    "NOTICE_FIELDS",
    "FieldSpec",
    "QueryError",
    "compile_batch_query",
    "compile_notice_query",
    "describe_fields",
]


class QueryError(BadInput):
    """A query that cannot be compiled; `position` is the 0-based offset in the query text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message, "`loader-assets select --help` lists the fields and operators")
        self.position = position

    def __str__(self) -> str:
        return self.cause


# --------------------------------------------------------------------------------------------- fields

INT, FLOAT, TEXT, BOOL, TIME = "int", "float", "text", "bool", "time"
_KIND_WORDS = {INT: "numeric", FLOAT: "numeric", TEXT: "text", BOOL: "bool", TIME: "time"}


class FieldSpec(NamedTuple):
    expression: ColumnElement[Any]
    kind: str


def _kind_of(sql_type: TypeEngine[Any]) -> str:
    # Boolean first: some dialect types derive from Integer.
    for sql_class, kind in ((Boolean, BOOL), (Integer, INT), (Float, FLOAT), (DateTime, TIME), (String, TEXT)):
        if isinstance(sql_type, sql_class):
            return kind
    raise TypeError(f"no query kind for SQL type {sql_type!r}")


def _column_fields(table: Any, names: Iterable[str]) -> dict[str, FieldSpec]:
    return {name: FieldSpec(table.c[name], _kind_of(table.c[name].type)) for name in names}


def _batch_aggregates() -> dict[str, FieldSpec]:
    """Counts of a batch's notices and the status derived from them, as correlated subqueries.

    An alias of `notices` keeps these subqueries from correlating to an enclosing query over notices.
    """
    member = notices.alias("member_notices")

    def count_where(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
        query = select(func.count()).select_from(member).where(member.c.batch == batches.c.id, *conditions)
        return query.scalar_subquery()

    counts = {status: count_where(member.c.status == status) for status in NOTICE_STATUSES}
    total = count_where()
    # An empty batch counts as done: none of its (zero) notices is left to load.
    status = case(
        (counts["failed"] > 0, "failed"),
        (counts["running"] > 0, "running"),
        (counts["done"] == total, "done"),
        else_="ready",
    )
    fields = {"status": FieldSpec(status, TEXT), "notices": FieldSpec(total, INT)}
    fields.update({name: FieldSpec(expression, INT) for name, expression in counts.items()})
    return fields


def _through_batch(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """A batch expression seen from a notice: the value for the notice's own batch."""
    return select(expression).where(batches.c.id == notices.c.batch).scalar_subquery()


BATCH_FIELDS: dict[str, FieldSpec] = {
    **_column_fields(batches, [column.name for column in batches.columns]),
    **_batch_aggregates(),
}

# attempt_id is an internal pointer into `attempts`, not something operators select by.
_NOTICE_COLUMNS = [column.name for column in notices.columns if column.name != "attempt_id"]

NOTICE_FIELDS: dict[str, FieldSpec] = {
    **_column_fields(notices, _NOTICE_COLUMNS),
    **{name: FieldSpec(_through_batch(batches.c[name]), BATCH_FIELDS[name].kind) for name in ("step", "task")},
    "directory": FieldSpec(_through_batch(batches.c.directory), TEXT),
    **{f"batch.{name}": FieldSpec(_through_batch(spec.expression), spec.kind) for name, spec in BATCH_FIELDS.items()},
}

# Fields whose values are a closed set: literals are checked so a typo is an error, not an empty result.
_CHOICES: dict[str, tuple[str, ...]] = {"status": NOTICE_STATUSES, "batch.status": NOTICE_STATUSES}


# -------------------------------------------------------------------------------------------- grammar

GRAMMAR = r"""
?start: disjunction

?disjunction: conjunction (_OR conjunction)*
?conjunction: negation (_AND negation)*
?negation: _NOT negation                                    -> negated
         | _LPAR disjunction _RPAR
         | predicate

?predicate: field COMPARE value                             -> compare
          | field _IN _LPAR items _RPAR                     -> in_items
          | field _IN range                                 -> in_items
          | field _NOT _IN _LPAR items _RPAR                -> not_in_items
          | field _NOT _IN range                            -> not_in_items
          | field _BETWEEN value _AND value                 -> between
          | field _NOT _BETWEEN value _AND value            -> not_between
          | field GLOB STRING                               -> match
          | field LIKE STRING                               -> match
          | field _NOT GLOB STRING                          -> not_match
          | field _NOT LIKE STRING                          -> not_match
          | field _IS _NULL                                 -> is_null
          | field _IS _NOT _NULL                            -> is_not_null
          | field                                           -> bare

field: NAME
     | AGE _LPAR NAME _RPAR                                 -> age_field

items: item (_COMMA item)*
?item: value | range
range: number _DOTDOT number

value: operand shift*
shift: (PLUS | MINUS) DURATION
?operand: STRING                                            -> text
        | NAME                                              -> word
        | number
        | DURATION                                          -> duration
        | TRUE                                              -> true
        | FALSE                                             -> false
        | NOW _LPAR _RPAR                                   -> now

number: NUMBER
      | MINUS NUMBER

_OR.3: /or\b/i
_AND.3: /and\b/i
_NOT.3: /not\b/i
_IN.3: /in\b/i
_IS.3: /is\b/i
_NULL.3: /null\b/i
_BETWEEN.3: /between\b/i
GLOB.3: /glob\b/i
LIKE.3: /like\b/i
TRUE.3: /true\b/i
FALSE.3: /false\b/i
NOW.3: /now\b/i
AGE.3: /age\b/i

NAME: /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/
COMPARE: /==|!=|<>|<=|>=|=|<|>/
STRING: /'(?:[^'\\]|\\[\s\S])*'/ | /"(?:[^"\\]|\\[\s\S])*"/
// a number glued to letters is a duration, checked later so `5y` gets a clear message; `1e5` stays a number
DURATION.2: /\d+(\.\d+)?(?![eE][+-]?\d)[A-Za-z_]\w*/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
PLUS: "+"
MINUS: "-"
_DOTDOT: ".."
_LPAR: "("
_RPAR: ")"
_COMMA: ","

%import common.WS
%ignore WS
"""


@functools.cache
def _parser() -> Lark:
    """Built on the first query, not on import: building the tables costs every CLI command a third of a second."""
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)


# What the terminals look like, for "expected ..." in syntax errors.
_TERMINAL_WORDS = {
    "_OR": "OR", "_AND": "AND", "_NOT": "NOT", "_IN": "IN", "_IS": "IS", "_NULL": "NULL",
    "_BETWEEN": "BETWEEN", "GLOB": "GLOB", "LIKE": "LIKE", "TRUE": "true", "FALSE": "false", "NOW": "now()",
    "AGE": "age()", "NAME": "name", "COMPARE": "comparison", "STRING": "string", "DURATION": "duration",
    "NUMBER": "number", "PLUS": "+", "MINUS": "-", "_DOTDOT": "..", "_LPAR": "(", "_RPAR": ")",
    "_COMMA": ",", "$END": "end of query",
}  # fmt: skip

_MAX_DEPTH = 64  # parse-tree depth (NOT, AND/OR groups); deeper trees would only exhaust the Python stack
_INT64 = (-(2**63), 2**63 - 1)
_DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_EVERYTHING = ("", "*", "all")


# ------------------------------------------------------------------------------------------- literals


@dataclass(frozen=True)
class Literal:
    """A value from the query: `kind` is int/float/text/bool/time or "duration"; `text` as written."""

    kind: str
    value: Any
    text: str
    position: int

    def describe(self) -> str:
        word = {INT: "number", FLOAT: "number"}.get(self.kind, self.kind)
        return f"{word} {self.text}"


@dataclass(frozen=True)
class Range:
    low: int
    high: int
    position: int


@dataclass(frozen=True)
class FieldRef:
    """A resolved field; `age` marks ``age(f)``, whose values are durations counted back from now."""

    name: str
    spec: FieldSpec
    position: int
    age: bool = False

    @property
    def label(self) -> str:
        return f"age({self.name})" if self.age else self.name

    @property
    def kind_word(self) -> str:
        return "duration" if self.age else _KIND_WORDS[self.spec.kind]


def _unquote(token: Token) -> str:
    body = token[1:-1]
    text = re.sub(r"\\([\s\S])", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)
    if "\x00" in text:  # PostgreSQL rejects NUL in text; refuse it everywhere so backends agree
        raise QueryError(f"bad string at {token.start_pos}: NUL characters are not allowed", token.start_pos)
    return text


def _number(token: Token, negative: bool, position: int) -> Literal:
    written = ("-" if negative else "") + token
    if re.fullmatch(r"\d+", token):
        value: int | float = -int(token) if negative else int(token)
        if not _INT64[0] <= value <= _INT64[1]:
            raise QueryError(f"bad integer {written} at {position}: outside the 64-bit range", position)
        return Literal(INT, value, written, position)
    value = -float(token) if negative else float(token)
    if not math.isfinite(value):
        raise QueryError(f"bad number {written} at {position}: too large", position)
    return Literal(FLOAT, value, written, position)


def _duration(token: Token) -> timedelta:
    amount, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(\w+)", token).groups()  # type: ignore[union-attr]
    if unit.lower() not in _DURATION_UNITS:
        raise QueryError(
            f"bad duration '{token}' at {token.start_pos}: units are s, m or min, h, d, w", token.start_pos
        )
    try:
        return timedelta(seconds=float(amount) * _DURATION_UNITS[unit.lower()])
    except OverflowError:
        raise QueryError(f"bad duration '{token}' at {token.start_pos}: too large", token.start_pos) from None


def _parse_time(text: str, position: int) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:  # the catalog stores naive UTC
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: an offset pushing year 1 or 9999 out of range
        raise QueryError(
            f"bad time {text!r} at {position}: expected ISO 8601 such as '2026-11-23' or '2026-11-23T10:00:00'",
            position,
        ) from None
    return moment


def _shift(moment: datetime, by: timedelta, position: int) -> datetime:
    try:
        return moment + by
    except OverflowError:
        raise QueryError(f"bad time at {position}: out of range after adding {by}", position) from None


# ------------------------------------------------------------------------------------------- compiler

_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<>": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
# age(f) > d  <=>  f < now - d: the comparison turns around when ages become times.
_MIRRORED = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class Wildcard(Enum):
    ANY_RUN = "any run of characters"
    ONE = "one character"


def _like_piece(piece: str | Wildcard) -> str:
    if isinstance(piece, Wildcard):
        return "%" if piece is Wildcard.ANY_RUN else "_"
    return "\\" + piece if piece in "%_\\" else piece


def _glob_piece(piece: str | Wildcard) -> str:
    if isinstance(piece, Wildcard):
        return "*" if piece is Wildcard.ANY_RUN else "?"
    return f"[{piece}]" if piece in "*?[" else piece  # SQLite GLOB has no escape character, only classes


def _wildcard_pieces(pattern: str, any_run: str, one: str) -> list[str | Wildcard]:
    """Split a GLOB or LIKE pattern into literal characters and wildcards; a backslash escapes."""
    pieces: list[str | Wildcard] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            pieces.append(next(chars, "\\"))  # a trailing backslash stands for itself
        elif char == any_run:
            pieces.append(Wildcard.ANY_RUN)
        elif char == one:
            pieces.append(Wildcard.ONE)
        else:
            pieces.append(char)
    return pieces


class GlobMatch(ColumnElement[bool]):
    """A case-sensitive wildcard match rendered per dialect: LIKE ... ESCAPE on PostgreSQL, GLOB on SQLite.

    SQLite's LIKE ignores ASCII case while PostgreSQL's does not; its GLOB is case-sensitive, so each
    backend gets the operator that gives the same answer. Both patterns are bound parameters.
    """

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a predicate already: no `= 1` appended in WHERE

    def self_group(self, against: Any = None) -> ColumnElement[bool]:
        return Grouping(self) if against is not None else self  # parenthesised under NOT/AND/OR

    _traverse_internals = [
        ("like", InternalTraversal.dp_clauseelement),
        ("glob", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, expression: ColumnElement[Any], pattern: list[str | Wildcard]) -> None:
        like = "".join(_like_piece(piece) for piece in pattern)
        glob = "".join(_glob_piece(piece) for piece in pattern)
        self.like = expression.like(literal(like, String()), escape="\\")
        self.glob = expression.op("GLOB", return_type=Boolean)(literal(glob, String()))


@compiles(GlobMatch)
def _compile_like(element: GlobMatch, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.like, **kw)


@compiles(GlobMatch, "sqlite")
def _compile_glob(element: GlobMatch, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.glob, **kw)


@v_args(inline=True)
class _Compiler(Transformer[Token, ColumnElement[bool]]):
    """Turns the parse tree into a SQLAlchemy expression; each method is one grammar alternative."""

    def __init__(self, fields: dict[str, FieldSpec], now: datetime) -> None:
        super().__init__()
        self.fields = fields
        self.clock = now  # one instant for the whole query

    # ---- boolean structure

    def disjunction(self, *parts: ColumnElement[bool]) -> ColumnElement[bool]:
        return or_(*parts)

    def conjunction(self, *parts: ColumnElement[bool]) -> ColumnElement[bool]:
        return and_(*parts)

    def negated(self, part: ColumnElement[bool]) -> ColumnElement[bool]:
        return not_(part)

    # ---- fields

    def field(self, name: Token) -> FieldRef:
        return FieldRef(str(name), self._lookup(name), name.start_pos)

    def age_field(self, age: Token, name: Token) -> FieldRef:
        spec = self._lookup(name)
        if spec.kind != TIME:
            raise QueryError(
                f"age() needs a time field, '{name}' is {_KIND_WORDS[spec.kind]} at {name.start_pos}",
                name.start_pos,
            )
        return FieldRef(str(name), spec, age.start_pos, age=True)

    def _lookup(self, name: Token) -> FieldSpec:
        if name in self.fields:
            return self.fields[name]
        near = difflib.get_close_matches(name, list(self.fields), n=3, cutoff=0.6)
        hint = f"did you mean: {', '.join(near)}?" if near else f"known fields: {_field_list(self.fields)}"
        raise QueryError(f"unknown field '{name}' at {name.start_pos}; {hint}", name.start_pos)

    # ---- literals

    def text(self, token: Token) -> Literal:
        return Literal(TEXT, _unquote(token), str(token), token.start_pos)

    def word(self, token: Token) -> Literal:
        """A bare word is text, so `status = failed` reads naturally; fields never compare to fields."""
        return Literal(TEXT, str(token), str(token), token.start_pos)

    def number(self, *tokens: Token) -> Literal:
        return _number(tokens[-1], negative=len(tokens) == 2, position=tokens[0].start_pos)

    def duration(self, token: Token) -> Literal:
        return Literal("duration", _duration(token), str(token), token.start_pos)

    def true(self, token: Token) -> Literal:
        return Literal(BOOL, True, "true", token.start_pos)

    def false(self, token: Token) -> Literal:
        return Literal(BOOL, False, "false", token.start_pos)

    def now(self, token: Token) -> Literal:
        return Literal(TIME, self.clock, "now()", token.start_pos)

    def shift(self, sign: Token, amount: Token) -> tuple[str, Token]:
        return str(sign), amount

    def value(self, operand: Literal, *shifts: tuple[str, Token]) -> Literal:
        """An operand with optional ``± duration`` steps: only times can be shifted."""
        if not shifts:
            return operand
        if operand.kind == TEXT:
            operand = Literal(TIME, _parse_time(operand.value, operand.position), operand.text, operand.position)
        if operand.kind != TIME:
            raise QueryError(
                f"only times can be shifted by a duration, got {operand.describe()} at {operand.position}",
                operand.position,
            )
        moment, written = operand.value, operand.text
        for sign, amount in shifts:
            step = _duration(amount)
            moment = _shift(moment, step if sign == "+" else -step, operand.position)
            written += f" {sign} {amount}"
        return Literal(TIME, moment, written, operand.position)

    def range(self, low: Literal, high: Literal) -> Range:
        for bound in (low, high):
            if bound.kind != INT:
                raise QueryError(f"bad range at {bound.position}: bounds must be integers", bound.position)
        if low.value > high.value:
            raise QueryError(
                f"bad range {low.text}..{high.text} at {low.position}: the lower bound exceeds the upper",
                low.position,
            )
        return Range(low.value, high.value, low.position)

    def items(self, *items: Literal | Range) -> list[Literal | Range]:
        return list(items)

    # ---- predicates

    def compare(self, field: FieldRef, op: Token, value: Literal) -> ColumnElement[bool]:
        self._check_ordering(field, str(op), op.start_pos)
        symbol = _MIRRORED[op] if field.age else str(op)
        return _COMPARISONS[symbol](field.spec.expression, self._bind(field, value))

    def in_items(self, field: FieldRef, items: list[Literal | Range] | Range) -> ColumnElement[bool]:
        items = items if isinstance(items, list) else [items]
        values = [self._bind(field, item) for item in items if isinstance(item, Literal)]
        ranges = [item for item in items if isinstance(item, Range)]
        if ranges and (field.spec.kind != INT or field.age):
            raise QueryError(
                f"ranges need an integer field, '{field.label}' is {field.kind_word} at {ranges[0].position}",
                ranges[0].position,
            )
        column = field.spec.expression
        # Ranges become BETWEEN, so `chunk IN 0..9999999` costs nothing.
        tests = [column.between(r.low, r.high) for r in ranges]
        if values:
            tests.insert(0, column.in_(values))
        return or_(*tests)

    def not_in_items(self, field: FieldRef, items: list[Literal | Range] | Range) -> ColumnElement[bool]:
        return not_(self.in_items(field, items))

    def between(self, field: FieldRef, low: Literal, high: Literal) -> ColumnElement[bool]:
        self._check_ordering(field, "BETWEEN", field.position)
        low_bound, high_bound = self._bind(field, low), self._bind(field, high)
        if field.age:  # older than `low` means earlier than now - low
            low_bound, high_bound = high_bound, low_bound
        return field.spec.expression.between(low_bound, high_bound)

    def not_between(self, field: FieldRef, low: Literal, high: Literal) -> ColumnElement[bool]:
        return not_(self.between(field, low, high))

    def match(self, field: FieldRef, op: Token, pattern: Token) -> ColumnElement[bool]:
        if field.spec.kind != TEXT or field.age:
            raise QueryError(
                f"{op.upper()} needs a text field, '{field.label}' is {field.kind_word} at {op.start_pos}",
                op.start_pos,
            )
        wildcards = ("*", "?") if op.upper() == "GLOB" else ("%", "_")
        return GlobMatch(field.spec.expression, _wildcard_pieces(_unquote(pattern), *wildcards))

    def not_match(self, field: FieldRef, op: Token, pattern: Token) -> ColumnElement[bool]:
        return not_(self.match(field, op, pattern))

    def is_null(self, field: FieldRef) -> ColumnElement[bool]:
        return field.spec.expression.is_(None)

    def is_not_null(self, field: FieldRef) -> ColumnElement[bool]:
        return field.spec.expression.is_not(None)

    def bare(self, field: FieldRef) -> ColumnElement[bool]:
        if field.spec.kind != BOOL or field.age:
            raise QueryError(
                f"field '{field.label}' is {field.kind_word}: only a bool field may stand alone "
                f"(write a comparison) at {field.position}",
                field.position,
            )
        return field.spec.expression == literal(True, Boolean())

    # ---- type rules

    def _check_ordering(self, field: FieldRef, op: str, position: int) -> None:
        if field.spec.kind == BOOL and op not in ("=", "==", "!=", "<>"):
            raise QueryError(f"operator {op} does not apply to bool field '{field.name}' at {position}", position)

    def _bind(self, field: FieldRef, value: Literal) -> ColumnElement[Any]:
        """The literal as a bound parameter of the field's type, after the type rules."""
        python_value = self._coerce(field, value)
        sql_type = field.spec.expression.type
        if isinstance(python_value, float) and field.spec.kind == INT:
            sql_type = Float()  # `chunk < 2.5` compares as a number, not truncated
        return literal(python_value, sql_type)

    def _coerce(self, field: FieldRef, value: Literal) -> Any:
        kind = field.spec.kind
        if field.age:
            if value.kind != "duration":
                raise self._mismatch(field, value)
            return _shift(self.clock, -value.value, value.position)
        if kind in (INT, FLOAT) and value.kind in (INT, FLOAT):
            return value.value
        if kind == TEXT and value.kind == TEXT:
            return self._check_choice(field, value)
        if kind == BOOL and value.kind == BOOL:
            return value.value
        if kind == TIME and value.kind == TIME:
            return value.value
        if kind == TIME and value.kind == TEXT:
            return _parse_time(value.value, value.position)
        raise self._mismatch(field, value)

    def _check_choice(self, field: FieldRef, value: Literal) -> str:
        choices = _CHOICES.get(field.name)
        if choices is None or value.value in choices:
            return str(value.value)
        near = difflib.get_close_matches(value.value, choices, n=1, cutoff=0.5)
        hint = f"; did you mean: {near[0]}?" if near else ""
        raise QueryError(
            f"bad {field.name} {value.text} at {value.position}: expected one of {', '.join(choices)}{hint}",
            value.position,
        )

    def _mismatch(self, field: FieldRef, value: Literal) -> QueryError:
        hint = ""
        if field.spec.kind == TIME and value.kind == "duration":
            hint = f"; use now() - {value.text} or age({field.name})"
        return QueryError(
            f"field '{field.label}' is {field.kind_word}, got {value.describe()} at {value.position}{hint}",
            value.position,
        )


# ----------------------------------------------------------------------------------------- public API


def compile_notice_query(text: str, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE expression over `schema.notices` (batch fields come as correlated subqueries: no join)."""
    return _compile(text, NOTICE_FIELDS, now)


def compile_batch_query(text: str, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE expression over `schema.batches`, including the counts and status derived from notices."""
    return _compile(text, BATCH_FIELDS, now)


def _compile(text: str, fields: dict[str, FieldSpec], now: datetime | None) -> ColumnElement[bool]:
    if text.strip().lower() in _EVERYTHING:
        return true()
    tree = _parse(text)
    _check_depth(tree)
    try:
        return _Compiler(fields, _naive_utc(now)).transform(tree)
    except VisitError as error:  # lark wraps what the callbacks raise
        if isinstance(error.orig_exc, QueryError):
            raise error.orig_exc from None
        raise


def _naive_utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(tzinfo=None)
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def _parse(text: str) -> Tree[Token]:
    try:
        return _parser().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None


def _syntax_error(text: str, error: UnexpectedInput) -> QueryError:
    position = error.pos_in_stream if error.pos_in_stream is not None else len(text)
    if isinstance(error, UnexpectedCharacters):
        char = text[position]
        found = f"character {char!r}" + (" (unterminated string?)" if char in "'\"" else "")
        expected: Iterable[str] = error.allowed or ()
    elif isinstance(error, UnexpectedToken):
        token = error.token
        found = "end of query" if token.type == "$END" else _describe_token(token)
        if token.type == "$END":
            position = len(text)
        # accepts() replays the parser, so the list is exact rather than LALR's merged-state guess
        expected = error.interactive_parser.accepts() if error.interactive_parser else error.expected
    else:
        found, expected = "input", ()
    words = sorted({_TERMINAL_WORDS.get(name, name) for name in expected})
    hint = f"; expected {', '.join(words)}" if words else ""
    return QueryError(f"syntax error at {position}: unexpected {found}{hint}", position)


def _field_list(fields: dict[str, FieldSpec]) -> str:
    """Field names with the batch.* family folded into one entry, to keep messages short."""
    names = [name for name in fields if "." not in name]
    return ", ".join(names + (["batch.<field>"] if len(names) < len(fields) else []))


def _describe_token(token: Token) -> str:
    word = _TERMINAL_WORDS.get(token.type, token.type)
    return f"{str(token)!r}" if word == token else f"{word} {str(token)!r}"


def _check_depth(tree: Tree[Token]) -> None:
    """Refuse absurd nesting before the recursive transformer and SQL compiler meet it."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            position = _first_position(node)
            raise QueryError(f"query nested too deeply at {position} (limit {_MAX_DEPTH})", position)
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children)


def _first_position(node: Tree[Token] | Token) -> int:
    while isinstance(node, Tree) and node.children:
        node = node.children[0]
    return node.start_pos if isinstance(node, Token) and node.start_pos is not None else 0


def describe_fields() -> str:
    """Fields and their kinds for both targets, as a help text (e.g. for the CLI's --help)."""

    def listing(fields: dict[str, FieldSpec]) -> str:
        return "\n".join(f"  {name:<18} {spec.kind}" for name, spec in fields.items() if "." not in name)

    batch_note = "  batch.<field>      any batch field below, for the notice's batch"
    return (
        f"notice fields:\n{listing(NOTICE_FIELDS)}\n{batch_note}\n\n"
        f"batch fields:\n{listing(BATCH_FIELDS)}\n\n"
        f"status is one of {', '.join(NOTICE_STATUSES)}; a batch is failed if any notice failed, else running "
        "if any runs, else done if all are done, else ready.\n"
        "times: '2026-11-23[T10:00:00]', now(), now() - 2h; durations: 30s 15m|15min 2h 3d 1w; "
        "age(started_at) > 30min.\n"
        "operators: = != < <= > >=, IN (1, 5..9), NOT IN, BETWEEN a AND b, GLOB 'step2_*', LIKE 'x%', "
        "IS [NOT] NULL, AND OR NOT ( ).\n"
    )
