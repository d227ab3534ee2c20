"""The dashboard's review panel: one waiting task's diff with Accept / Discard / Request changes.

Owns: `ReviewPanel` (ipywidgets), shown under the dashboard's table when a row's Review button
is clicked: the diff (`view.diffview`), a text box, and the three buttons (tooltips `Accept
RQ-0003`, `Discard RQ-0003`, `Request changes RQ-0003`) that call the same `loop.accept`,
`loop.discard(note=...)` and `loop.requeue(feedback=...)` a user can call by hand.
Invariants: opening computes the diff in a daemon thread and the decisions run in daemon
threads (git and a merge never block the kernel); widget values set from those threads are
plain value sets (no `display`, no `with output:`); a decision disables the buttons at once, so
one click is one decision; after it the panel closes itself.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from .diffview import diff_html


class ReviewPanel(W.VBox):
    """Review of one task at a time for `loop` (hidden until `show(task_id)`)."""

    def __init__(self, loop: Any, on_change: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.task_id: str | None = None
        self.on_change = on_change or (lambda: None)
        self.title = W.HTML("")
        self.view = W.HTML("", layout=W.Layout(max_height="480px", overflow="auto"))
        self.text = W.Textarea(
            placeholder="What should change (for Request changes), or why (for Discard)",
            layout=W.Layout(width="100%", height="60px"),
        )
        self.accept = W.Button(description="Accept", button_style="success")
        self.discard = W.Button(description="Discard", button_style="danger")
        self.request = W.Button(description="Request changes", button_style="warning")
        self.request.layout.width = "140px"
        self.close_button = W.Button(description="Close")
        self.status = W.HTML("")
        self.accept.on_click(lambda _b: self._decide("accept"))
        self.discard.on_click(lambda _b: self._decide("discard"))
        self.request.on_click(lambda _b: self._decide("requeue"))
        self.close_button.on_click(lambda _b: self.hide())
        buttons = W.HBox([self.accept, self.discard, self.request, self.close_button, self.status])
        super().__init__([self.title, self.view, self.text, buttons])
        self.add_class("ralphnb-review")
        self.layout.display = "none"

    @property
    def buttons(self) -> list[W.Button]:
        return [self.accept, self.discard, self.request]

    def show(self, task_id: str) -> None:
        """Show task `task_id`'s diff and its decision buttons (the diff loads in a thread)."""
        self.task_id = task_id
        self.accept.tooltip = f"Accept {task_id}"
        self.discard.tooltip = f"Discard {task_id}"
        self.request.tooltip = f"Request changes {task_id}"
        self.title.value = f"<b>Review {html.escape(task_id)}</b>"
        self.view.value = "<i>computing the diff…</i>"
        self.status.value = ""
        self.text.value = ""
        for b in self.buttons:
            b.disabled = False
        self.layout.display = ""
        threading.Thread(target=self._load, args=(task_id,), daemon=True).start()

    def hide(self) -> None:
        self.task_id = None
        self.layout.display = "none"
        self.view.value = ""

    def _load(self, task_id: str) -> None:
        try:
            value = diff_html(self.loop.diff(task_id))
        except Exception as exc:  # shown in the panel, never raised in a thread
            value = f'<span style="color:#b91c1c">{html.escape(str(exc))}</span>'
        if self.task_id == task_id:
            self.view.value = value

    def _decide(self, action: str) -> None:
        task_id, text = self.task_id, self.text.value.strip()
        if task_id is None:
            return
        if action == "requeue" and not text:
            self.status.value = '<span style="color:#b91c1c">write what should change first</span>'
            return
        for b in self.buttons:
            b.disabled = True
        self.status.value = f"{html.escape(action)} {html.escape(task_id)}…"

        def run() -> None:
            try:
                if action == "accept":
                    self.loop.accept(task_id)
                elif action == "discard":
                    self.loop.discard(task_id, note=text)
                else:
                    self.loop.requeue(task_id, feedback=text)
            except Exception as exc:  # reported in the panel, never raised in a thread
                self.status.value = (
                    f'<span style="color:#b91c1c">{html.escape(action)} failed: '
                    f"{html.escape(str(exc))}</span>"
                )
                return
            finally:
                self.on_change()
            if self.task_id == task_id:
                self.hide()

        threading.Thread(target=run, name="ralphnb-review-action", daemon=True).start()

    def close(self) -> None:
        for w in (*self.buttons, self.close_button, self.title, self.view, self.text, self.status):
            w.close()
        super().close()


__all__ = ["ReviewPanel"]
