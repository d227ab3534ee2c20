"""Plots of a sweep's summary: pass rate and cost per variant (matplotlib, optional).

Owns: `plot_summary`. matplotlib is imported inside the function, so importing ralphnb never
needs it; without it the call raises a `RalphError` saying what to install.
Never: shows a window or writes a file (it returns the figure).
"""

from __future__ import annotations

from typing import Any

from ..errors import RalphError


def plot_summary(summary: Any, *, figsize: tuple[float, float] = (9.0, 3.2)) -> Any:
    """A figure of two bar charts from `Sweep.summary()`: pass rate, and median cost with cost
    per pass, per variant. Returns the matplotlib `Figure`."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RalphError(
            "sweep plots need matplotlib: pip install matplotlib (or ralphnb[notebook])"
        ) from exc
    names = [str(v) for v in summary.index]
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize)
    left.bar(names, list(summary["pass_rate"]), color="#16a34a")
    left.set_ylim(0, 1)
    left.set_ylabel("pass rate")
    left.set_title("Pass rate per variant")
    xs = range(len(names))
    width = 0.4
    right.bar([x - width / 2 for x in xs], list(summary["median_cost_usd"]), width, label="median")
    right.bar(
        [x + width / 2 for x in xs],
        list(summary["cost_per_pass"].fillna(0.0)),
        width,
        label="per pass",
    )
    right.set_xticks(list(xs), names)
    right.set_ylabel("USD")
    right.set_title("Cost per variant")
    right.legend()
    fig.tight_layout()
    plt.close(fig)  # returned, not shown twice by a notebook's inline backend
    return fig


__all__ = ["plot_summary"]
