"""A small price table for CLIs that report tokens but no cost (Codex, Gemini CLI, kimi).

Owns: `PRICES` (USD per million input and output tokens, the providers' published list prices
for standard, non-batch use, as of 2025) and `estimate_cost`. Invariants: pure; a model that is
not in the table (or a prefix of it) gets no estimate, never a guess; cache discounts are
ignored, so an estimate is an upper bound. A runner's `price=(input, output)` option overrides
the table, e.g. for a self-hosted endpoint. Costs a CLI reports itself are never replaced.
"""

from __future__ import annotations

#: (USD per million input tokens, USD per million output tokens)
Price = tuple[float, float]

PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": (1.25, 10.0),
    "gpt-5-codex": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3": (2.0, 8.0),
    "o4-mini": (1.10, 4.40),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    # Moonshot
    "kimi-k2": (0.60, 2.50),
}


def lookup(model: str | None) -> Price | None:
    """The price of `model`: an exact entry, else the longest entry it starts with followed by
    a date or version suffix (`gemini-2.5-flash-001`), after any `provider/` prefix."""
    if not model:
        return None
    name = model.rsplit("/", 1)[-1].lower()
    if name in PRICES:
        return PRICES[name]
    for key in sorted(PRICES, key=len, reverse=True):
        rest = name[len(key) :]
        if name.startswith(key) and rest[:1] == "-" and rest[1:2].isdigit():
            return PRICES[key]
    return None


def estimate_cost(
    model: str | None,
    tokens_in: int | None,
    tokens_out: int | None,
    *,
    price: Price | None = None,
) -> float | None:
    """USD for the tokens at `price` (else the table's price of `model`); None if unknown."""
    p = price if price is not None else lookup(model)
    if p is None or (tokens_in is None and tokens_out is None):
        return None
    return ((tokens_in or 0) * float(p[0]) + (tokens_out or 0) * float(p[1])) / 1_000_000
