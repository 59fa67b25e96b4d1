"""A parser and evaluator for the Timelion subset atlas emits, with Kibana's semantics, over a real Elasticsearch.

Semantics follow Kibana's vis_types/timelion server functions: `.es()` buckets a metric per interval (missing
buckets are null with fit='none', `offset` shifts the queried range and moves points back); `movingaverage`
(position left) averages the current point and the window-1 before it, `movingstd` (position left) the previous
`window` points dividing by window-1, both summing with JavaScript's `+` (null counts as 0); arithmetic
(`sum`, `multiply`) gives null where either side is null; `.if()` compares with JavaScript's operators (a null
compares as 0 in `<`/`>`, and only null equals null in `eq`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

Number = float | None


@dataclass
class Call:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chain:
    calls: list[Call]


def parse(expression: str) -> list[Chain]:
    """Comma-separated chains of `.fn(name=value, ...)` calls; values: 'strings', numbers, null, chains."""
    parser = _Parser(expression)
    chains = [parser.chain()]
    while parser.peek(","):
        parser.take(",")
        chains.append(parser.chain())
    parser.end()
    return chains


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self, literal: str) -> bool:
        rest = self.text[self.pos :].lstrip()
        return rest.startswith(literal)

    def take(self, literal: str) -> None:
        rest = self.text[self.pos :]
        stripped = rest.lstrip()
        if not stripped.startswith(literal):
            raise ValueError(f"expected {literal!r} at {self.pos}: {rest[:30]!r}")
        self.pos += len(rest) - len(stripped) + len(literal)

    def end(self) -> None:
        if self.text[self.pos :].strip():
            raise ValueError(f"trailing text at {self.pos}: {self.text[self.pos :][:30]!r}")

    def chain(self) -> Chain:
        calls = [self.call()]
        while self.peek("."):
            calls.append(self.call())
        return Chain(calls)

    def call(self) -> Call:
        match = re.compile(r"\s*\.([a-zA-Z][\w-]*)\(").match(self.text, self.pos)
        if match is None:
            raise ValueError(f"expected a function at {self.pos}: {self.text[self.pos :][:30]!r}")
        self.pos = match.end()
        call = Call(match.group(1))
        while not self.peek(")"):
            name = re.compile(r"\s*([a-zA-Z]\w*)\s*=").match(self.text, self.pos)
            if name is None:
                raise ValueError(f"expected name= at {self.pos}")
            self.pos = name.end()
            call.args[name.group(1)] = self.value()
            if self.peek(","):
                self.take(",")
        self.take(")")
        return call

    def value(self) -> Any:
        if self.peek("."):
            return self.chain()
        string = re.compile(r"\s*'((?:\\.|[^'\\])*)'").match(self.text, self.pos)
        if string is not None:
            self.pos = string.end()
            return re.sub(r"\\(.)", r"\1", string.group(1))
        bare = re.compile(r"\s*([^()\"',=\s]+)").match(self.text, self.pos)
        if bare is None:
            raise ValueError(f"expected a value at {self.pos}")
        self.pos = bare.end()
        word = bare.group(1)
        return None if word == "null" else float(word)


@dataclass
class Evaluator:
    """Evaluates chains over the time grid [start, end) with `interval`, querying `es` for `.es()`."""

    es: Elasticsearch
    start: datetime
    end: datetime
    interval: timedelta

    def times(self) -> list[datetime]:
        count = (self.end - self.start) // self.interval
        return [self.start + k * self.interval for k in range(count)]

    def evaluate(self, chain: Chain) -> list[Number]:
        values: list[Number] | None = None
        for call in chain.calls:
            values = getattr(self, "fn_" + call.name)(values, **call.args)
        assert values is not None
        return values

    def _arg(self, value: Any) -> Any:
        return self.evaluate(value) if isinstance(value, Chain) else value

    # ---- data source
    def fn_es(
        self, _: Any, index: str, timefield: str, metric: str, q: str, fit: str, offset: str = "+0h"
    ) -> list[Number]:
        assert fit == "none"
        sign, amount, unit = re.fullmatch(r"([-+])(\d+)([smhd])", offset).groups()  # type: ignore[union-attr]
        shift = timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: int(amount)})
        shift = shift if sign == "+" else -shift
        agg, metric_field = metric.split(":")
        lo, hi = self.start + shift, self.end + shift
        body = {
            "size": 0,
            "query": {
                "bool": {
                    "filter": [
                        {"query_string": {"query": q}},
                        {"range": {timefield: {"gte": lo.isoformat(), "lt": hi.isoformat()}}},
                    ]
                }
            },
            "aggs": {
                "t": {
                    "date_histogram": {
                        "field": timefield,
                        "fixed_interval": f"{int(self.interval.total_seconds())}s",
                        "min_doc_count": 0,
                        "extended_bounds": {"min": lo.isoformat(), "max": (hi - self.interval).isoformat()},
                    },
                    "aggs": {"m": {agg: {"field": metric_field}}},
                }
            },
        }
        buckets = self.es.search(index=index, body=body)["aggregations"]["t"]["buckets"]
        by_time = {b["key"]: b["m"]["value"] for b in buckets}
        return [by_time.get(int((t + shift).timestamp() * 1000)) for t in self.times()]

    # ---- pass-through display functions
    def fn_label(self, values: list[Number], **_: Any) -> list[Number]:
        return values

    def fn_bars(self, values: list[Number], **_: Any) -> list[Number]:
        return values

    def fn_yaxis(self, values: list[Number], **_: Any) -> list[Number]:
        return values

    # ---- statistics
    def fn_movingaverage(self, values: list[Number], window: float, position: str) -> list[Number]:
        assert position == "left"
        w = int(window)
        out: list[Number] = []
        for i in range(len(values)):
            cursor = i + 1
            out.append(None if cursor < w else _js_number(_js_sum(values[cursor - w : cursor])) / w)
        return out

    def fn_movingstd(self, values: list[Number], window: float, position: str) -> list[Number]:
        assert position == "left"
        w = int(window)
        out: list[Number] = []
        for i in range(len(values)):
            if i < w:
                out.append(None)
                continue
            window_values = values[i - w : i]
            average = _js_number(_js_sum(window_values)) / w
            variance = _js_number(_js_sum([(_js_number(v) - average) ** 2 for v in window_values])) / (w - 1)
            out.append(math.sqrt(variance))
        return out

    # ---- arithmetic: null on either side gives null
    def fn_multiply(self, values: list[Number], multiplier: Any) -> list[Number]:
        return _pointwise(values, self._arg(multiplier), lambda a, b: a * b)

    def fn_sum(self, values: list[Number], input: Any) -> list[Number]:
        return _pointwise(values, self._arg(input), lambda a, b: a + b)

    def fn_if(self, values: list[Number], operator: str, **kwargs: Any) -> list[Number]:
        limit, then, other = (self._arg(kwargs.get(k)) for k in ("if", "then", "else"))

        def at(source: Any, i: int) -> Number:
            return source[i] if isinstance(source, list) else source

        out: list[Number] = []
        for i, v in enumerate(values):
            bound = at(limit, i)
            if operator == "eq":
                holds = (v is None and bound is None) or (v is not None and bound is not None and v == bound)
            else:
                a, b = _js_number(v), _js_number(bound)
                holds = {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[operator]
            out.append(at(then, i) if holds else (at(other, i) if "else" in kwargs else v))
        return out


def _js_number(value: Number) -> float:
    return 0.0 if value is None else value


def _js_sum(values: list[Number]) -> Number:
    """lodash reduce with `memo + num`, no initial value: the first element is the start; null counts as 0."""
    if not values:
        return None
    total: Number = values[0]
    for v in values[1:]:
        total = _js_number(total) + _js_number(v)
    return total


def _pointwise(values: list[Number], other: Any, fn: Any) -> list[Number]:
    out: list[Number] = []
    for i, v in enumerate(values):
        right = other[i] if isinstance(other, list) else other
        out.append(None if v is None or right is None else fn(v, right))
    return out
