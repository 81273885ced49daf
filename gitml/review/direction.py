"""Which way is better for a metric: lower (loss, error, rmse...) or higher (accuracy, auc, f1, r2...).

Used to colour a change as better or worse rather than by its sign. A
metric's direction comes from, first to last:

1. the request (``?better=val_loss:lower``, ``gitml diff --better KEY:higher``);
2. git config: ``git config gitml-metric.<key>.better lower|higher``
   (a subsection per metric key, so any key can be named);
3. its name: the words of its last path part (``val_loss``, ``train/acc``,
   ``test-rmse``) against the known names below.

A metric none of these name has no direction: its changes are shown, not judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from gitml.errors import InvalidValue
from gitml.store.repo import GitRepo

Direction = Literal["lower", "higher"]
DIRECTIONS: tuple[Direction, ...] = ("lower", "higher")
CONFIG_SECTION = "gitml-metric"

LOWER = frozenset({
    "loss", "losses", "error", "err", "errors", "rmse", "mse", "mae", "mape", "smape", "rmsle", "msle", "logloss", "nll",
    "perplexity", "ppl", "wer", "cer", "ter", "fpr", "fnr", "brier", "hamming", "latency", "eer", "distance",
    "regret", "cost", "deviance", "entropy", "crossentropy", "bpc", "bpd", "fid", "kl", "divergence",
})
HIGHER = frozenset({
    "accuracy", "acc", "auc", "roc", "rocauc", "aucroc", "f1", "f1score", "fscore", "precision", "recall", "r2",
    "iou", "miou", "map", "ap", "bleu", "rouge", "meteor", "ndcg", "mrr", "hit", "hits", "top1", "top5", "tpr",
    "tnr", "specificity", "sensitivity", "kappa", "mcc", "dice", "psnr", "ssim", "reward", "return", "score",
    "throughput", "explained", "exact", "em", "spearman", "pearson", "correlation", "auprc", "prauc",
})


def by_name(key: str) -> Direction | None:
    """The direction a metric's name implies, or None (``val_loss`` -> lower, ``train/acc`` -> higher)."""
    last = key.rsplit("/", 1)[-1].lower()
    words = [w for w in re.split(r"[^a-z0-9]+", last) if w]
    for word in reversed(words):  # the last word names the measure: "loss_accuracy" is an accuracy
        if word in LOWER:
            return "lower"
        if word in HIGHER:
            return "higher"
    joined = "".join(words)
    if joined in LOWER:
        return "lower"
    if joined in HIGHER:
        return "higher"
    return None


def parse_overrides(values: Iterable[str]) -> dict[str, Direction]:
    """``KEY:lower`` / ``KEY:higher`` (the last colon splits, so keys may hold colons) -> {key: direction}.

    Raises:
        InvalidValue: a value without ``:lower`` or ``:higher``.
    """
    out: dict[str, Direction] = {}
    for value in values:
        key, sep, way = value.rpartition(":")
        if not sep or not key or way not in DIRECTIONS:
            raise InvalidValue(f"Invalid metric direction {value!r}: use <metric>:lower or <metric>:higher")
        out[key] = way  # type: ignore[assignment]
    return out


def configured(repo: GitRepo) -> dict[str, Direction]:
    """The directions set in git config (``gitml-metric.<key>.better``); bad values are ignored."""
    out: dict[str, Direction] = {}
    prefix = CONFIG_SECTION + "."
    for name, value in repo.config_items(prefix):
        key, _, var = name[len(prefix):].rpartition(".")
        if key and var == "better" and value.strip().lower() in DIRECTIONS:
            out[key] = value.strip().lower()  # type: ignore[assignment]
    return out


def directions(repo: GitRepo | None, keys: Iterable[str],
               overrides: Mapping[str, Direction] | None = None) -> dict[str, Direction | None]:
    """Each key's direction: the override, else git config, else its name, else None."""
    config = configured(repo) if repo is not None else {}
    overrides = overrides or {}
    return {k: overrides.get(k) or config.get(k) or by_name(k) for k in keys}


def verdict(direction: Direction | None, change: float | None) -> str | None:
    """``better``, ``worse`` or None (no direction, no change, or no number)."""
    if direction is None or change is None or change == 0 or change != change:
        return None
    return "better" if (change < 0) == (direction == "lower") else "worse"
