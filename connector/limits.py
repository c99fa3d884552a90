"""What one expression may cost, and the interpreter that holds it to that.

A flow's author writes JMESPath that runs in every run (the workers) and in the web process
(the builder's check and preview, dry runs). Unbounded, 22 characters
(`decimal('1E+10000000')`) answer ten megabytes, and `[@, @]` piped 30 times stands for 2**30
copies. So:

- compiled, an expression has at most MAX_LENGTH characters and MAX_DEPTH levels of nesting
  (which also keeps the parser's and the interpreter's recursion far from Python's limit);
- evaluated by BoundedInterpreter, every list or object it makes may come to at most MAX_SIZE
  written out as JSON and nest at most MAX_DEPTH levels, text made by a function too; the
  values of one mapping together come to at most MAX_SIZE; and a deadline is looked at as
  projections walk their items and as functions are called;
- the functions that make a big value from a small one (decimal digits, replace, join, concat,
  dates, round) check before they make it (connector.functions).

Why a value is counted as written out, not as the memory it holds: `[@, @]` is a list of two
references to one value, so 30 pipes hold 30 small lists, yet whatever walks the result
(==, to_string, str(), the input schema's validation, json.dumps of the step log) takes 2**30
steps. Counting nodes visited or memory held misses that; so does any bound on the
expression alone (`[@,@,@,@,@,@,@,@]` multiplies by eight in 17 characters). So each value
an expression makes is recorded, by identity and for one evaluation only, with its size as
written out: a reference to it then costs one dictionary look-up, and the check stays O(1)
per item made. Data the expression reads (the trigger, earlier steps' outputs) is measured
once, with the C JSON encoder, the first time it ends up in something made or in a result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.functions import Functions
from jmespath.visitor import Options, TreeInterpreter, Visitor, _Expression

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode as Node
else:
    Node = dict

MAX_LENGTH = 1000  # characters in an expression; real ones are under 300
MAX_DEPTH = 40  # levels of nesting, in an expression and in a value it makes
MAX_SIZE = 1_000_000  # characters a value comes to written out as JSON (text counts its length)
MAX_DIGITS = 40  # digits of a number written out plainly (money needs under 20)
SECONDS = 0.5  # one mapping, evaluated; ordinary ones take microseconds
CHECK_SECONDS = 2.0  # every mapping of one check or dry run, in the web process
TICKS = 64  # items walked or functions called between two looks at the clock
# Lists or objects of the data a mapping may give whole, as its results, before they count
# towards MAX_SIZE: at most this many times the data, which came in within its own bounds; so
# the usual mapping (`trigger`, `trigger.customer`, `trigger.lines`) is never measured, and a
# mapping of a thousand fields that each give `trigger` still is.
FREE_RESULTS = 8


class LimitError(JMESPathError):
    """An expression passed a bound; `code` and `params` make its words (connector.messages),
    to which the mapping adds the expression."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(f"{code} {params}")
        self.code = code
        self.params = params


def too_big(unit: str = "characters", limit: int = MAX_SIZE) -> LimitError:
    return LimitError("expression_too_big", unit=unit, limit=limit)


def too_deep() -> LimitError:
    return LimitError("expression_too_deep", limit=MAX_DEPTH)


def clip(text: str, most: int = 300) -> str:
    """`text`, cut short with … when longer than `most` characters (for messages)."""
    return text if len(text) <= most else text[: most - 1] + "…"


def written_depth(source: str) -> int:
    """How deep the brackets of an expression nest as written (quoted text left out), when
    that may be more than MAX_DEPTH (0 when there are not that many brackets at all); looked
    at before parsing, whose recursion follows them."""
    if sum(map(source.count, "([{")) <= MAX_DEPTH:  # the usual case, counted at C speed
        return 0
    deepest = level = 0
    quote, escaped = "", False
    for ch in source:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            level += 1
            deepest = max(deepest, level)
        elif ch in ")]}":
            level -= 1
    return deepest


@lru_cache(maxsize=4096)
def depth(source: str) -> int:
    """How many levels an expression that parses nests; each part of a chain (a.[b].[c])
    counts as one more, since each may wrap the value the one before it gave. (Kept by
    source: a flow is compiled in every process that runs it.)"""
    tree: Node = jmespath.compile(source).parsed
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        chained = node["type"] in ("subexpression", "index_expression", "pipe")
        for i, child in enumerate(node.get("children", ())):
            if isinstance(child, dict):
                stack.append((child, level + 1 + (i if chained else 0)))
    return deepest


class Deadline(NamedTuple):
    """When an evaluation must stop (time.monotonic()), and the seconds that were given."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)


# Data read from the trigger or a step is JSON (or close: a Decimal, a date), and a tree.
_ENCODER = json.JSONEncoder(default=str, skipkeys=True, separators=(",", ":"))


def data_size(value: Any) -> int:
    """How many characters `value`, data an expression read, comes to written out as JSON."""
    try:
        return len(_ENCODER.encode(value))
    except (ValueError, RecursionError):  # circular, or nested past Python's limit
        return MAX_SIZE + 1


def _true(value: Any) -> bool:
    """JMESPath's truth: all but false, null, "", [] and {} (connector.mapping.truthy)."""
    return not (value == "" or value == [] or value == {} or value is None or value is False)


class _Tally:
    """The size and depth of a list or object being made, checked at every item."""

    __slots__ = ("data", "depth", "interpreter", "size")

    def __init__(self, interpreter: BoundedInterpreter) -> None:
        self.interpreter = interpreter
        self.size = 2
        self.depth = 0
        self.data = False  # whether it holds data picked out of another (pick())

    def add(self, value: Any, extra: int = 1) -> None:
        if isinstance(value, str):  # the usual item, so measured here and not by a call
            self.size += len(value) + 2 + extra
        elif isinstance(value, list | dict):
            size, depth = self.interpreter.measure(value)
            self.size += size + extra
            if depth > self.depth:
                self.depth = depth
        else:
            self.size += 1 + extra
        if self.size > MAX_SIZE:
            raise too_big()

    def pick(self, value: Any) -> None:
        """Add an item picked out of another list or object (`picked_from`, for keep()): data
        in it is one of that one's parts, and counted with them, later, as a whole."""
        if isinstance(value, list | dict):
            known = self.interpreter.made.get(id(value))
            if known is None or known[1] == 0:  # data: a part of an item of `picked_from`
                self.data = True
                self.size += 2
                return
        self.add(value)

    def keep(self, made: Any, picked_from: Any = None) -> Any:
        if self.depth >= MAX_DEPTH:
            raise too_deep()
        self.interpreter.made[id(made)] = (self.size, self.depth + 1, made)
        if self.data:
            self.interpreter.lazy[id(made)] = picked_from
        return made


class _OnTheClock(Visitor):
    """What an &expression (of map, sort_by, ...) is visited by: the interpreter, once a
    tick per item. (The expression itself stays an _Expression: JMESPath checks a function's
    arguments by their class's name.)"""

    def __init__(self, interpreter: BoundedInterpreter) -> None:
        super().__init__()
        self.interpreter = interpreter

    def visit(self, node: Node, *args: Any, **kwargs: Any) -> Any:
        self.interpreter.tick()
        return self.interpreter.visit(node, *args, **kwargs)


class BoundedInterpreter(TreeInterpreter):
    """JMESPath's interpreter, keeping count of what it makes; for one evaluation of one
    mapping (its expressions share the clock and the size of the results)."""

    def __init__(self, options: Options, deadline: Deadline) -> None:
        super().__init__(options)
        self.functions = options.custom_functions or Functions()
        self.dict_cls = options.dict_cls or dict
        self.deadline = deadline
        self.ticks = TICKS
        # id → (size written out, levels of nesting, the value: kept so its id stays its own)
        self.made: dict[int, tuple[int, int, Any]] = {}
        # id → the list or object whose size bounds the data a made list also holds, for
        # lists that pick data out of another (trigger.lines[?qty > `0`]): the data is
        # measured, as a whole, only if that list is put in another or given as a result.
        self.lazy: dict[int, Any] = {}
        self.results = 0  # what the mapping's results come to so far
        self.free = FREE_RESULTS
        self.exhausted = False  # out of time or of room: the mapping's other fields wait

    # Each node type's method, for every evaluation: JMESPath's own cache is one instance's,
    # and an instance lives for one evaluation only.
    _methods: ClassVar[dict[str, Callable[[Any, Node, Any], Any]]] = {}

    def visit(self, node: Node, value: Any) -> Any:
        method = self._methods.get(node["type"])
        if method is None:
            method = cast(
                Callable[[Any, Node, Any], Any],
                getattr(type(self), f"visit_{node['type']}", type(self).default_visit),
            )
            self._methods[node["type"]] = method
        return method(self, node, value)

    # --- accounts ---------------------------------------------------------------------------

    def measure(self, value: Any) -> tuple[int, int]:
        """(size written out, levels of nesting made by this evaluation) of `value`."""
        if isinstance(value, str):
            return len(value) + 2, 0
        if isinstance(value, list | dict):
            known = self.made.get(id(value))
            if known is None:  # data read: a tree, measured once
                known = (data_size(value), 0, value)
                self.made[id(value)] = known
            elif id(value) in self.lazy:
                picked_from = self.lazy.pop(id(value))
                known = (known[0] + self.measure(picked_from)[0], known[1], value)
                self.made[id(value)] = known
                if known[0] > MAX_SIZE:
                    raise too_big()
            return known[0], known[1]
        return 1, 0

    def result(self, value: Any) -> None:
        """Add a result of the mapping to what its results come to together."""
        known = self.made.get(id(value)) if isinstance(value, list | dict) else None
        if (
            self.free
            and isinstance(value, list | dict)
            and (known is None or id(value) in self.lazy)  # data, or data picked out of it
        ):
            self.free -= 1  # given whole (FREE_RESULTS); what the list made still counts
            self.results += known[0] if known else 0
        else:
            self.results += self.measure(value)[0]
        if self.results > MAX_SIZE:
            self.exhausted = True
            raise too_big("total")

    def tick(self) -> None:
        self.ticks -= 1
        if self.ticks < 0:
            self.clock()

    def clock(self) -> None:
        self.ticks = TICKS
        if time.monotonic() > self.deadline.at:
            self.exhausted = True
            raise LimitError("expression_too_slow", seconds=self.deadline.seconds)

    # --- what makes lists and objects -------------------------------------------------------

    def visit_multi_select_list(self, node: Node, value: Any) -> Any:
        if value is None:
            return None
        tally, collected = _Tally(self), []
        for child in node["children"]:
            item = self.visit(child, value)
            tally.add(item)
            collected.append(item)
        return tally.keep(collected)

    def visit_multi_select_dict(self, node: Node, value: Any) -> Any:
        if value is None:
            return None
        tally, collected = _Tally(self), self.dict_cls()
        for child in node["children"]:
            item = self.visit(child, value)
            tally.add(item, len(child["value"]) + 4)
            collected[child["value"]] = item
        return tally.keep(collected)

    def visit_projection(self, node: Node, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        return self._project(base, node["children"][1], base)

    def visit_value_projection(self, node: Node, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, dict):
            return None
        return self._project(base.values(), node["children"][1], base)

    def _project(self, base: Any, each: Node, picked_from: Any) -> Any:
        tally, collected = _Tally(self), []
        for element in base:
            self.tick()
            current = self.visit(each, element)
            if current is not None:
                tally.pick(current)
                collected.append(current)
        return tally.keep(collected, picked_from)

    def visit_filter_projection(self, node: Node, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        condition, each = node["children"][2], node["children"][1]
        tally, collected = _Tally(self), []
        for element in base:
            self.tick()
            if _true(self.visit(condition, element)):
                current = self.visit(each, element)
                if current is not None:
                    tally.pick(current)
                    collected.append(current)
        return tally.keep(collected, base)

    def visit_flatten(self, node: Node, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        tally, merged = _Tally(self), []
        for element in base:
            for item in element if isinstance(element, list) else (element,):
                tally.pick(item)
                merged.append(item)
        return tally.keep(merged, base)

    def visit_slice(self, node: Node, value: Any) -> Any:
        items = super().visit_slice(node, value)
        if items is None:
            return None
        tally = _Tally(self)
        for item in items:
            tally.pick(item)
        return tally.keep(items, value)

    def visit_literal(self, node: Node, value: Any) -> Any:
        literal = node["value"]
        if isinstance(literal, list | dict):  # made, as far as the accounts go: not data
            known = self.made.get(id(literal))
            if known is None:
                self.made[id(literal)] = (data_size(literal), 1, literal)
        return literal

    def visit_expref(self, node: Node, value: Any) -> Any:
        return _Expression(node["children"][0], _OnTheClock(self))  # type: ignore[arg-type]

    def visit_function_expression(self, node: Node, value: Any) -> Any:
        self.ticks -= 1  # self.tick(), without the call: functions are the common case
        if self.ticks < 0:
            self.clock()
        args, held = [], 0  # what the arguments this evaluation made hold together
        for child in node["children"]:
            arg = self.visit(child, value)
            if isinstance(arg, str):
                held += len(arg)
            elif isinstance(arg, list | dict):
                known = self.made.get(id(arg))
                held += known[0] if known is not None and known[1] else 0  # depth 0: data
            if held > MAX_SIZE:
                raise too_big()
            args.append(arg)
        name = node["value"]
        try:
            result = self.functions.call_function(name, args)
        except JMESPathError:  # a ValueError too, and already said in words
            raise
        except (ArithmeticError, ValueError) as exc:  # a date off the calendar, and the like
            raise JMESPathError(f"{name}(): {exc}") from None
        if isinstance(result, str):
            if len(result) > MAX_SIZE:
                raise too_big()
        elif (
            isinstance(result, list | dict)
            and id(result) not in self.made
            and not any(result is arg for arg in args)
        ):
            tally = _Tally(self)
            if isinstance(result, dict):
                for key, item in result.items():
                    tally.add(item, len(str(key)) + 4)
            else:
                for item in result:
                    tally.add(item)
            tally.keep(result)
        return result
