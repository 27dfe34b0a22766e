"""The load generator: shoppers, each a process with its own session, doing full checkouts."""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import requests


@dataclass
class Load:
    """What a group of shoppers did: the POST /checkout latencies, their own CPU time and
    when they were busy (time.monotonic(), which every process on the machine shares)."""

    latencies_ms: list[float]
    cpu_seconds: float
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Shopper:
    """One browser session: a cookie jar and keep-alive connection to the shop."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def fill_cart(self) -> None:
        page = self.http.get(self.url, timeout=10).text
        self.http.post(f"{self.url}cart/add", timeout=10, allow_redirects=False, data={
            "csrf_token": hidden(page, "csrf_token"), "sku": "mug", "quantity": 1})

    def checkout(self, card: str) -> float:
        """One full checkout; returns the POST /checkout latency in ms."""
        self.fill_cart()
        page = self.http.get(f"{self.url}checkout", timeout=10).text
        form = {name: hidden(page, name)
                for name in ("csrf_token", "checkout_id", "expected_total_cents")}
        form |= {"email": "bench@example.com", "name": "Bench Shopper", "card_number": card,
                 "expiry": "12/34", "cvc": "123", "address": "1 Main St",
                 "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}
        started = time.perf_counter()
        response = self.http.post(f"{self.url}checkout", data=form, timeout=30,
                                  allow_redirects=False)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 302 or "/orders/" not in response.headers["Location"]:
            raise RuntimeError(f"checkout failed: {response.status_code}")
        return elapsed


def percentile(values: Sequence[float], p: int) -> float:
    """The `p`th percentile of `values` (statistics.quantiles, its default method)."""
    return statistics.quantiles(values, n=100)[p - 1]


def hidden(html: str, name: str) -> str:
    """The value of the form field `name` in a page."""
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    if match is None:
        raise RuntimeError(f"no field {name} in the page")
    return match[1]


def shop_for(url: str, card: str, count: int) -> Load:
    """One shopper's `count` checkouts in a row."""
    shopper = Shopper(url)
    cpu, started = time.process_time(), time.monotonic()
    latencies = [shopper.checkout(card) for _ in range(count)]
    return Load(latencies, time.process_time() - cpu, started, time.monotonic())


def pin(cpus: tuple[int, ...] | None) -> None:
    """Keeps this process on `cpus` (all cores if None)."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def drive(urls: str | Sequence[str], card: str, count: int, concurrency: int,
          cpus: tuple[int, ...] | None = None) -> Load:
    """`count` checkouts from `concurrency` shoppers at once, spread over `urls` (the nodes of
    a site: shopper n uses urls[n % len(urls)]), on `cpus` if given. Each shopper is a
    process of its own, so the load generator's GIL never delays the clock it times."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    share = [count // concurrency + (n < count % concurrency) for n in range(concurrency)]
    targets = [urls[n % len(urls)] for n in range(concurrency)]
    with ProcessPoolExecutor(concurrency, initializer=pin, initargs=(cpus,)) as pool:
        loads = list(pool.map(shop_for, targets, [card] * concurrency, share))
    return Load([ms for load in loads for ms in load.latencies_ms],
                sum(load.cpu_seconds for load in loads),
                min(load.started for load in loads), max(load.ended for load in loads))


def page_views(url: str, seconds: float) -> int:
    """GET /checkout with a full cart, again and again for `seconds`; how many were served."""
    shopper = Shopper(url)
    shopper.fill_cart()
    stop_at, done = time.monotonic() + seconds, 0
    while time.monotonic() < stop_at:
        shopper.http.get(f"{url}checkout", timeout=10).raise_for_status()
        done += 1
    return done


def page_throughput(url: str, concurrency: int, seconds: float = 5.0) -> float:
    """GET /checkout requests per second from `concurrency` shoppers (processes) at once."""
    with ProcessPoolExecutor(concurrency) as pool:
        served = pool.map(page_views, [url] * concurrency, [seconds] * concurrency)
        return sum(served) / seconds
