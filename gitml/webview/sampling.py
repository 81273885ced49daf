"""Metric histories thinned for the chart view across runs: a bounded number of points per run.

A chart a few hundred pixels wide cannot show 10k points of each of 100
runs; fetching and drawing them all is what made the chart view slow. As
MLflow's UI does (``get-history-bulk-interval``, ~320 points a run), the view
asks for a sample, but a sample that keeps the shape of the line: the first
and the last point, and for each stretch of the history in between (a bucket
of consecutive points, in logging order) its lowest and its highest value,
in the order they were logged. A spike or a dip is never sampled away, which
an evenly spaced sample (every k-th step) would do. A run's own page charts
every point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Points per run the chart view asks for: two per pixel column of a wide chart card.
DEFAULT_POINTS = 500
MIN_POINTS = 2
MAX_POINTS = 10_000


def sample_indexes(values: Sequence[float], max_points: int) -> list[int]:
    """The indexes of at most ``max_points`` points of ``values`` that keep its shape, ascending.

    Every index when there are no more than ``max_points``. Otherwise the
    first, the last, and from each of ``(max_points - 2) // 2`` buckets of
    consecutive points between them the lowest and the highest value (one
    index when they are the same point). NaN is no extreme: a bucket of only
    NaN keeps its first point (a gap in the line), otherwise its NaNs are
    dropped. Infinities are extremes like any other value.

    Raises:
        ValueError: ``max_points`` is below 2.
    """
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, not {max_points}")
    n = len(values)
    if n <= max_points:
        return list(range(n))
    buckets = (max_points - 2) // 2
    inner = n - 2  # the points between the first and the last
    out = [0]
    for b in range(buckets):
        lo = 1 + b * inner // buckets
        hi = 1 + (b + 1) * inner // buckets
        if lo >= hi:
            continue
        chunk = values[lo:hi]
        total = sum(chunk)  # in C: NaN if the bucket holds a NaN (or both infinities)
        if total == total:
            low, high = lo + chunk.index(min(chunk)), lo + chunk.index(max(chunk))
        else:
            numbers = [(v, lo + i) for i, v in enumerate(chunk) if not math.isnan(v)]
            if not numbers:
                out.append(lo)
                continue
            low, high = min(numbers)[1], max(numbers, key=lambda p: (p[0], -p[1]))[1]
        if low == high:
            out.append(low)
        else:
            out.extend((low, high) if low < high else (high, low))
    out.append(n - 1)
    return out


class TextCache:
    """A least-recently-used map of keys to texts, bounded by their total length; safe across threads.

    The viewer keeps each run's sampled history here as JSON text, keyed by the
    run's commit: a commit names its content, so an entry is never stale (a run
    that logs more has a new commit, and its old entry ages out). Reading and
    parsing 10k points from git costs ~10 ms a run; a chart view of 100 runs
    opened again (another filter, the next page and back) costs none of it.
    """

    def __init__(self, max_chars: int) -> None:
        import threading
        from collections import OrderedDict

        self.max_chars = max_chars
        self._items: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            text = self._items.get(key)
            if text is not None:
                self._items.move_to_end(key)
            return text

    def put(self, key: tuple[str, ...], text: str) -> None:
        if len(text) > self.max_chars:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._chars += len(text) - (len(old) if old is not None else 0)
            self._items[key] = text
            while self._chars > self.max_chars:
                _, dropped = self._items.popitem(last=False)
                self._chars -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._items)
