"""The built-in demo: a deterministic agent (`ralphnb.demo.agent`, run as its own process; its
test modes in `modes`) and
a sample repository (`create_sample_repo`) for `make demo`, tests and Binder."""

from __future__ import annotations

from .sample import create_sample_repo

__all__ = ["create_sample_repo"]
