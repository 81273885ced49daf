"""``gitml report BASE..HEAD``: a pull-request comment in markdown, with metric-history plots.

The report is a directory: ``report.md`` and one PNG per plotted metric
(the metric's history in the base run and in the head run, by step). The
markdown starts with the marker ``<!-- gitml-report -->`` so a CI job can
find its earlier comment and update it instead of adding another. Images
are referenced by file name, or under ``image_prefix`` when the CI job
publishes them somewhere (docs/review.md has a GitHub Actions workflow that
pushes them to a branch of the same repository, so no third-party host
sees them).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from gitml.errors import InvalidValue
from gitml.review.diff import Side, compare, metric_directions, render, resolve_side
from gitml.store.repo import GitRepo

MARKER = "<!-- gitml-report -->"


def split_range(spec: str) -> tuple[str, str]:
    """``BASE..HEAD`` (or ``BASE...HEAD``) -> (BASE, HEAD); HEAD defaults to ``HEAD``."""
    base, sep, head = spec.partition("...") if "..." in spec else spec.partition("..")
    if not sep or not base:
        raise InvalidValue(f"Invalid range {spec!r}: write BASE..HEAD, e.g. main..HEAD or origin/main..feature")
    return base, head or "HEAD"


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:60] + "-" + hashlib.sha1(key.encode()).hexdigest()[:6]


def _run_link(side: Side, run_url: str | None) -> str:
    if side.run is None:
        return "no run"
    rid = side.run.info.run_id
    name = side.run.info.run_name or rid[:8]
    if run_url:
        return f"[{name}]({run_url.format(run_id=rid)})"
    return f"`{name}` (`gitml runs show {rid[:12]}`)"


def plot_histories(repo: GitRepo, old: Side, new: Side, out_dir: Path, keys: list[str]) -> dict[str, str]:
    """One PNG per metric key: its history in both runs. Returns key -> file name."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidValue("Metric plots need matplotlib: pip install 'gitml[report]', or pass --max-plots 0") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gitml.tracking import runs

    files = {}
    for key in keys:
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        drawn = False
        for side, style, color in ((old, "--", "#888888"), (new, "-", "#1f77b4")):
            if side.run is None or key not in side.run.data.metrics:
                continue
            points = runs.metric_history(repo, side.run.info.run_id, key)
            if not points:
                continue
            points.sort(key=lambda m: (m.step, m.timestamp))
            ax.plot([m.step for m in points], [m.value for m in points], style, color=color,
                    marker="o" if len(points) == 1 else None, label=side.label)
            drawn = True
        if drawn:
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            name = f"{_slug(key)}.png"
            fig.savefig(out_dir / name)
            files[key] = name
        plt.close(fig)
    return files


def make_report(repo: GitRepo, spec: str, out_dir: str | Path, pick: str | None = None, run_url: str | None = None,
                image_prefix: str = "", precision: int = 5, max_plots: int = 8) -> Path:
    """Write ``report.md`` and the plots for ``BASE..HEAD`` into ``out_dir``; return the markdown's path.

    Raises:
        InvalidValue (bad range), RevisionNotFound.
    """
    base, head = split_range(spec)
    old, new = resolve_side(repo, base, pick), resolve_side(repo, head, pick)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = compare(old, new, directions=metric_directions(repo, old, new))
    changed = list(result["metrics"])
    unchanged = sorted(set(new.metrics) - set(changed))
    plots = plot_histories(repo, old, new, out, (changed + unchanged)[:max_plots]) if max_plots > 0 else {}
    lines = [
        MARKER,
        f"## gitml: `{base}` → `{head}`",
        "",
        f"- base: {_run_link(old, run_url)}" + (f" at `{old.commit[:10]}`" if old.commit else "")
        + (f" ({old.note})" if old.note else ""),
        f"- head: {_run_link(new, run_url)}" + (f" at `{new.commit[:10]}`" if new.commit else "")
        + (f" ({new.note})" if new.note else ""),
        "",
    ]
    if old.run is None or new.run is None:
        missing = base if old.run is None else head
        lines.append(f"> No run found for `{missing}` or its recent ancestors: log one (for example with "
                     "`gitml hooks install` or `gitml run`) to compare.")
        lines.append("")
    lines += [render(result, old, new, "markdown", precision), ""]
    if plots:
        lines.append("### Metric history")
        lines.append("")
        for key, name in plots.items():
            lines.append(f"![{key}]({image_prefix}{name})")
        lines.append("")
    lines.append("<sub>Unchanged params and metrics are left out; `gitml diff --all` lists them.</sub>")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
