"""The template node's Jinja2 sandbox: its bounded environment, its ports, and one render.

Jinja's sandbox keeps templates away from Python's internals but not from asking for a gigabyte
(``{{ "x" * 10**9 }}``) or an hour of loops. So this environment also caps the template's size,
``range()``, the operators, filters and string methods that multiply text, and the output; and a
render stops at a deadline that loops, calls and operators check. Those checks give friendly
templates a clear reason fast; what they cannot catch (a filter chain that never calls back into
the template) is stopped by the process that renders (``flows/runtime/template_renderer.py``).

Imports nothing of Django: the renderer processes load it alone.
"""

from __future__ import annotations

import math
import re
import time
import types
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from functools import lru_cache
from string import Formatter
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flows.runtime.conditions import to_text

MAX_TEMPLATE = 100_000
MAX_OUTPUT = 1_000_000
MAX_RANGE = 10_000
RENDER_TIMEOUT_S = 2.0
# The biggest integer ``**`` may make, in bits (about 30,000 digits).
MAX_POWER_BITS = 100_000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# A printf width or precision that is ``*`` or seven digits or more.
_HUGE_PRINTF = re.compile(r"%[-#0 +]*(?:\*|\d{7})|%[-#0 +]*\d*\.(?:\*|\d{7})")


class TemplateError(ValueError):
    """A template that cannot be saved or rendered; the message says where when it can."""


# The running render's deadline (``time.monotonic()``) and its length in seconds.
_deadline: ContextVar[tuple[float, float]] = ContextVar("template_deadline", default=(math.inf, 0))


def timed_out(seconds: float) -> TemplateError:
    return TemplateError(f"rendering took longer than {seconds:g} s")


def _tick() -> None:
    deadline, seconds = _deadline.get()
    if time.monotonic() > deadline:
        raise timed_out(seconds)


def _room(size: int, what: str = "a text") -> None:
    if size > MAX_OUTPUT:
        raise TemplateError(f"{what} would be longer than {MAX_OUTPUT:,} characters")


# --- the bounded sandbox ----------------------------------------------------------------------


class _Range(Sequence):
    """``range()`` for templates: at most ``MAX_RANGE`` items; loops over it see the deadline."""

    def __init__(self, numbers: range) -> None:
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def __getitem__(self, index):
        item = self._numbers[index]
        return _Range(item) if isinstance(item, range) else item

    def __iter__(self) -> Iterator[int]:
        for count, number in enumerate(self._numbers):
            if count % 256 == 0:
                _tick()
            yield number


def _range(*args: int) -> _Range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateError(f"range() is limited to {MAX_RANGE:,} items")
    return _Range(numbers)


class _Ticking:
    """A ``{% for %}`` loop's iterable: each item checks the deadline. Loops over a long text
    make no call or operation that would, so three nested ones ran for days."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __len__(self) -> int:  # ``loop.length`` and ``loop.last`` as before
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            _tick()
            yield item


class _CodeGenerator(CodeGenerator):
    # ``a ~ b`` compiles to a plain join; route it through the environment to measure it.
    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


def _replaced_size(text: str, old: str, new: str, count: int | None) -> int:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


def _check_str_method(text: str, name: str, args: tuple) -> None:
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _room(args[0])
    elif name == "expandtabs":
        _room(len(text) + text.count("\t") * (args[0] if args else 8))
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else None
        _room(_replaced_size(text, str(args[0]), str(args[1]), count))


def _joined_size(items: list, separator: str) -> int:
    return sum(len(str(item)) for item in items) + len(separator) * max(0, len(items) - 1)


def _weight(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return len(value) + sum(len(v) for v in value if isinstance(v, str))


class _Undefined(StrictUndefined):
    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if isinstance(self._undefined_obj, _Outputs):  # say the port, not a class name
            return f"'{self._undefined_obj._node}.{self._undefined_name}' is undefined"
        return super()._undefined_message


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,
            undefined=_Undefined,
            keep_trailing_newline=True,
            # What the rest of the studio shows: nothing for None, JSON for objects.
            finalize=lambda value: value if isinstance(value, str) else to_text(value),
        )
        self.globals["range"] = _range
        del self.globals["lipsum"]  # paragraphs of filler, by the thousand if asked
        self._bound_filters()

    def _generate(self, source: nodes.Template, name, filename, defer_init: bool = False) -> str:
        # ``{% for x in items %}`` compiles as ``for x in environment.ticking(items)``: changed
        # here, before the code generator's first pass, and not in what ``parse`` gives
        # ``template_ports``.
        for loop in source.find_all(nodes.For):
            ticking = nodes.EnvironmentAttribute("ticking")
            loop.iter = nodes.Call(ticking, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        return super()._generate(source, name, filename, defer_init)

    def ticking(self, items: Any) -> _Ticking:
        return _Ticking(items)

    def concat(self, parts: tuple) -> str:
        texts, size = [], 0
        for part in parts:
            text = str(part)
            size += len(text)
            _room(size)
            texts.append(text)
        return "".join(texts)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        sized = (str, list, tuple)
        if operator == "*":
            sequence, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(sequence, sized) and isinstance(times, int):
                _room(_weight(sequence) * times)
        elif operator == "**":
            if all(isinstance(n, int) and not isinstance(n, bool) for n in (left, right)):
                if abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS:
                    raise TemplateError(f"{left} ** {right} is too big a number")
        elif operator == "%":
            if isinstance(left, str) and _HUGE_PRINTF.search(left):
                raise TemplateError("format widths are limited to six digits")
        elif isinstance(left, sized) and isinstance(right, sized):
            _room(_weight(left) + _weight(right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:
        _tick()
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str):
            _check_str_method(__obj.__self__, __obj.__name__, args)
            if __obj.__name__ == "join" and args:
                items = list(args[0])
                _room(_joined_size(items, __obj.__self__))
                args = (items, *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str):
            _room(len(result))
        return result

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # A port named like a dict method that changes the dict (``update``) is still a port.
        if isinstance(obj, _Outputs) and dict.__contains__(obj, attr):
            return True
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fields = [spec for _, _, spec, _ in _FORMATTER.parse(value.__self__) if spec]
        if any("{" in spec or re.search(r"\d{7}", spec) for spec in fields):
            raise TemplateError("format widths are limited to six digits")
        return wrapper

    def _bound_filters(self) -> None:
        filters = self.filters
        center, indent, replace = filters["center"], filters["indent"], filters["replace"]
        join, format_, wordwrap = filters["join"], filters["format"], filters["wordwrap"]
        batch, slice_ = filters["batch"], filters["slice"]

        def bounded_center(value, width=80):
            _room(width if isinstance(width, int) else 0)
            return center(value, width)

        def bounded_indent(s, width=4, first=False, blank=False):
            lines = str(s).count("\n") + 1
            step = width if isinstance(width, int) else len(str(width))
            _room(len(str(s)) + lines * step)
            return indent(s, width, first, blank)

        @pass_eval_context
        def bounded_replace(eval_ctx, s, old, new, count=None):
            _room(_replaced_size(str(s), str(old), str(new), count))
            return replace(eval_ctx, s, old, new, count)

        @pass_eval_context
        def bounded_join(eval_ctx, value, d="", attribute=None):
            items = list(value)
            if attribute is None:
                _room(_joined_size(items, str(d)))
            else:  # the attribute's values are only known once joined
                _room(len(str(d)) * max(0, len(items) - 1))
            joined = join(eval_ctx, items, d, attribute)
            _room(len(joined))
            return joined

        def bounded_format(value, *args, **kwargs):
            if _HUGE_PRINTF.search(str(value)):
                raise TemplateError("format widths are limited to six digits")
            return format_(value, *args, **kwargs)

        def bounded_wordwrap(s, width=79, break_long_words=True, wrapstring=None, **kwargs):
            lines = len(str(s)) // max(int(width), 1) + str(s).count("\n") + 1
            _room(len(str(s)) + lines * len(wrapstring or "\n"))
            return wordwrap(self, s, width, break_long_words, wrapstring, **kwargs)

        def bounded_batch(value, linecount, fill_with=None):
            if linecount > MAX_RANGE:
                raise TemplateError(f"batch() is limited to {MAX_RANGE:,} items")
            return batch(value, linecount, fill_with)

        def bounded_slice(value, slices, fill_with=None):
            if slices > MAX_RANGE:
                raise TemplateError(f"slice() is limited to {MAX_RANGE:,} slices")
            return slice_(value, slices, fill_with)

        filters.update(
            center=bounded_center,
            indent=bounded_indent,
            replace=bounded_replace,
            join=bounded_join,
            format=bounded_format,
            wordwrap=bounded_wordwrap,
            batch=bounded_batch,
            slice=bounded_slice,
        )


_FORMATTER = Formatter()
_ENV = _Environment()


# --- ports and rendering ----------------------------------------------------------------------


def _line_of(exc: BaseException) -> int | None:
    """The template line an exception was raised on (Jinja rewrites tracebacks to show it)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _reference(parent: nodes.Node | None, name: nodes.Name, callees: set[int]) -> str | None:
    """The port of ``name.port`` or ``name["port"]``, if ``name`` is used that way here; not
    ``name.split()``, a method called on a plain variable."""
    if isinstance(parent, nodes.Getattr) and parent.node is name and id(parent) not in callees:
        return parent.attr
    if (
        isinstance(parent, nodes.Getitem)
        and parent.node is name
        and isinstance(parent.arg, nodes.Const)
        and isinstance(parent.arg.value, str)
        and _IDENTIFIER.fullmatch(parent.arg.value)
    ):
        return parent.arg.value
    return None


@lru_cache(maxsize=256)
def template_ports(source: str) -> tuple[str, ...]:
    """The input ports of a template, in order of first use; ``TemplateError`` for a syntax
    error (with its line), a name used both as a variable and as a node, or nesting too deep
    for Python's stack (``{{ a.b.b.b… }}``)."""
    try:
        return _ports(source)
    except RecursionError:
        raise TemplateError("the template nests too deeply") from None


def _ports(source: str) -> tuple[str, ...]:
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None
    undeclared = meta.find_undeclared_variables(tree) - set(_ENV.globals)
    callees = {id(call.node) for call in tree.find_all(nodes.Call)}
    ports: dict[str, None] = {}
    bare: set[str] = set()
    nodes_of: set[str] = set()

    def walk(node: nodes.Node, parent: nodes.Node | None) -> None:
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in undeclared:
            port = _reference(parent, node, callees)
            (nodes_of if port else bare).add(node.name)
            ports[f"{node.name}.{port}" if port else node.name] = None
        for child in node.iter_child_nodes():
            walk(child, node)

    walk(tree, None)
    both = sorted(bare & nodes_of)
    if both:
        raise TemplateError(
            f"{both[0]!r} is used both as a variable ({{{{ {both[0]} }}}}) and as a node "
            f"({{{{ {both[0]}.port }}}})"
        )
    return tuple(ports)


class _Outputs(dict):
    """A referenced node's outputs: ``{{ node.items }}`` reads the port ``items``, not the dict
    method of that name."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return super().__getattribute__(name)


def _context(inputs: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for port, value in inputs.items():
        node, dot, name = port.partition(".")
        if dot:
            context.setdefault(node, _Outputs(node))[name] = value
        else:
            context[port] = value
    return context


@lru_cache(maxsize=256)
def _compiled(source: str):
    return _ENV.from_string(source)


def template_render(
    source: str, inputs: dict[str, Any], timeout_s: float = RENDER_TIMEOUT_S
) -> str:
    """Render ``source`` with the node's inputs (keyed by port), here, in this process.
    Raises ``TemplateError`` with the template line for anything that goes wrong: a missing
    value, a limit, the deadline, a Python error; ``MemoryError`` as it is.

    Its deadline is cooperative (checked by loops, calls and operators): the template node
    renders through ``flows.runtime.template_renderer``, in a process that is killed if it
    passes."""
    token = _deadline.set((time.monotonic() + timeout_s, timeout_s))
    chunks, size = [], 0
    try:
        for chunk in _compiled(source).generate(_context(inputs)):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateError(f"the text would be longer than {MAX_OUTPUT:,} characters")
            chunks.append(chunk)
    except MemoryError:
        raise
    except Exception as exc:
        line = _line_of(exc)
        where = f"line {line}: " if line else ""
        if isinstance(exc, UndefinedError):
            raise TemplateError(f"{where}{exc.message}") from None
        if isinstance(exc, TemplateError | SecurityError):
            raise TemplateError(f"{where}{exc}") from None
        raise TemplateError(f"{where}{type(exc).__name__}: {exc}") from None
    finally:
        _deadline.reset(token)
    return "".join(chunks)
