"""PNG figures (matplotlib, headless Agg): row-normalised confusion matrices and learning curves.

Each function returns the data it drew with the file path, so tests can check the image
against exactly what was plotted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lssed.train.results import RunResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    path: Path
    title: str
    kind: str  # "confusion" | "curves"
    data: Any  # confusion: the row-normalised matrix (tuple of tuples); curves: {run: (epochs, loss, val_ua)}
    labels: tuple[str, ...] = ()  # class names (confusion) or run names (curves)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def row_normalise(counts: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows (true classes) sum to 1; an all-zero row (class absent) stays 0."""
    m = np.asarray(counts, dtype=float)
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)


def confusion_png(counts: Sequence[Sequence[int]], class_names: Sequence[str], title: str, path: Path) -> Figure:
    """A row-normalised confusion matrix (rows true, columns predicted) with cell values."""
    norm = row_normalise(counts)
    k = norm.shape[0]
    if norm.shape != (k, k) or len(class_names) != k:
        raise ValueError(f"confusion matrix {norm.shape} does not match {len(class_names)} class names")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 1.1 * k + 1.6), dpi=100)
    try:
        im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
        ax.set_xticks(range(k), labels=list(class_names), rotation=30, ha="right")
        ax.set_yticks(range(k), labels=list(class_names))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return Figure(path, title, "confusion", tuple(tuple(float(x) for x in row) for row in norm), tuple(class_names))


def curves_png(runs: Sequence[RunResults], title: str, path: Path) -> Figure:
    """Training loss and validation UA per epoch, one line per run."""
    plt = _pyplot()
    data: dict[str, tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]] = {}
    fig, (ax_loss, ax_ua) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    try:
        for r in runs:
            if not r.history:
                continue
            epochs = tuple(h.epoch for h in r.history)
            loss = tuple(float(h.train_loss) for h in r.history)
            ua = tuple(100.0 * h.val.ua for h in r.history)
            data[r.run_name] = (epochs, loss, ua)
            ax_loss.plot(epochs, loss, marker="o", markersize=3, label=r.run_name)
            ax_ua.plot(epochs, ua, marker="o", markersize=3, label=r.run_name)
        from matplotlib.ticker import MaxNLocator

        for ax in (ax_loss, ax_ua):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("training loss")
        ax_ua.set_xlabel("epoch")
        ax_ua.set_ylabel("validation UA (%)")
        fig.suptitle(title, fontsize=10)
        if data:
            ax_ua.legend(fontsize=6, loc="best")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return Figure(path, title, "curves", data, tuple(data))
