"""The dashboard's budget: spent / limit in the header, a control that changes the limit, a
banner saying why no attempt starts (widgets in plain Python: `button.click()`)."""

from __future__ import annotations

import time

from ralphnb.loop.budget import Budget
from ralphnb.view import widgets
from tests.view.fake_loop import FakeLoop


def _until(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_header_shows_spent_and_limit_and_the_control_raises_it():
    loop = FakeLoop(3)  # 3 x $0.01 spent
    loop.budget = Budget(0.02, lambda: list(loop.snapshot(sample=False)))
    dash = widgets.Dashboard(loop, start=False)
    assert "budget $0.03 / $0.02" in dash.table.value
    assert dash.budget_input.value == 0.02
    assert "budget reached" in dash.banner.value and "raise the budget" in dash.banner.value
    dash.budget_input.value = 5.0
    dash.budget_button.click()
    assert _until(lambda: loop.budget.limit == 5.0)
    dash.refresh()
    assert "budget $0.03 / $5.00" in dash.table.value and dash.banner.value == ""


def test_a_loop_without_a_budget_renders_as_before():
    dash = widgets.Dashboard(FakeLoop(1), start=False)
    assert "budget" not in dash.table.value and dash.budget_button.disabled
