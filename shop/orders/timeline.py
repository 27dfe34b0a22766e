"""An order's Flex timeline: its calls grouped by action (the checkout, a refund, a webhook's
lookups) and laid out to scale, for the order page's waterfall charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flex.calllog import LoggedCall

# Calls logged without an action: one starting this long after the previous ones starts a
# new chart, and a refund, capture or cancel is an action of its own.
BURST_GAP_SECONDS = 1.0
OWN_CHART = {"refund", "capture", "cancel"}
SCALE = 1000  # the bars' SVG viewBox width


@dataclass(frozen=True)
class Bar:
    call: LoggedCall
    offset_ms: int  # from the start of its chart
    x: float  # position and length in SVG units of SCALE
    width: float


@dataclass(frozen=True)
class Waterfall:
    """The calls of one action (the checkout, a later refund...), drawn to one scale: its
    duration is that action's, from its first call's start to its last call's end."""

    started_at: datetime
    span_ms: int
    bars: list[Bar]

    @property
    def why(self) -> str:
        """What the action was for: its first call's purpose (a token renewal says less)."""
        calls = [bar.call for bar in self.bars]
        first = next((c for c in calls if c.endpoint != "token"), calls[0])
        return first.why


def waterfalls(calls: list[LoggedCall]) -> list[Waterfall]:
    """Groups an order's calls by action (the calls made under one `flex.purpose`: the
    checkout, one refund, one webhook's lookups) and places each call on its action's time
    scale, so a reader sees what ran in parallel (the vault beside the authorization) and how
    long each action took. Calls logged without an action (the relay's /transmit, rows older
    than actions) are grouped by time, in bursts."""
    actions: dict[str, list[LoggedCall]] = {}
    loose: list[LoggedCall] = []
    for call in sorted(calls, key=lambda c: (c.started_at, c.id)):
        if call.action:
            actions.setdefault(call.action, []).append(call)
        else:
            loose.append(call)
    groups = [*actions.values(), *_bursts(loose)]
    groups.sort(key=lambda group: (group[0].started_at, group[0].id))
    return [_chart(group) for group in groups]


def _bursts(calls: list[LoggedCall]) -> list[list[LoggedCall]]:
    bursts: list[list[LoggedCall]] = []
    for call in calls:
        if bursts and not _starts_chart(bursts[-1], call):
            bursts[-1].append(call)
        else:
            bursts.append([call])
    return bursts


def _starts_chart(burst: list[LoggedCall], call: LoggedCall) -> bool:
    if call.started_at > _end(burst) + BURST_GAP_SECONDS:
        return True
    return call.endpoint in OWN_CHART and all(c.endpoint != call.endpoint for c in burst)


def _end(burst: list[LoggedCall]) -> float:
    return max(call.created_at for call in burst)


def _chart(burst: list[LoggedCall]) -> Waterfall:
    start = burst[0].started_at
    span_ms = max(1, round((_end(burst) - start) * 1000))
    bars = []
    for call in burst:
        offset_ms = max(0, round((call.started_at - start) * 1000))
        x = min(SCALE * offset_ms / span_ms, SCALE - 2)
        width = max(SCALE * call.ms / span_ms, 2)  # even a 0 ms call stays visible
        bars.append(Bar(call, offset_ms, round(x, 1), round(min(width, SCALE - x), 1)))
    return Waterfall(datetime.fromtimestamp(start, UTC), span_ms, bars)
