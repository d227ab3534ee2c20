"""The live dashboard of a Loop (ipywidgets 8) and the notebook display of a loop.

Owns: `Dashboard` (one per loop, see `dashboard(loop)`), its render thread and its buttons, and
`mimebundle(loop)` which `Loop._repr_mimebundle_` delegates to. What is read from the loop comes
from `view.sampler`; the tables are drawn by `loop.report` (text) and `view.render` (HTML).

Invariants:
- Widget values are set from ONE render thread, inside `hold_sync()`, at most `max_rate`
  times a second; `loop.subscribe` only sets a dirty flag. Nothing here calls `display()` or
  `with output:` from a thread.
- The live table is one HTML widget (one comm message per render however many workers
  changed); the Stop/Kill/Log buttons sit in a column beside it, one fixed-height row per
  table row, and only change when a worker starts or ends.
- Button handlers never block the kernel: `loop.stop`/`loop.kill`/`pause`/`resume`/`stop_all`
  run in short-lived daemon threads.
- The render thread ends after a final render once the loop has finished, or on `close()`.
- Only the Loop's public API is read (`snapshot`, `paused`, `finished`, `progress`, ...): live
  CPU/RSS are sampled (`loop.snapshot()`) on a render at most once a second; the renders in
  between read `loop.snapshot(sample=False)` and carry the last figures over.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import ipywidgets as W

from ..loop.report import latest_by_task, record_value, text_table
from .diffview import diff_view
from .render import HEAD_PX, ROW_PX, TOP_PX, html_table
from .reviewpanel import ReviewPanel
from .sampler import Sampler, budget_text, header, log_text, loop_finished, records
from .transcript import live_html
from .transcript import render as transcript_html

ACTIVE = ("queued", "starting", "running", "stopping")
"""Statuses of a worker whose process may still run (its Stop/Kill buttons are live)."""
VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def in_kernel() -> bool:
    """True inside a running IPython kernel (where widget views can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


# ---------------------------------------------------------------------------- dashboard


def _call_in_thread(fn: Callable[[], Any], on_error: Callable[[BaseException], None]) -> None:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # reported in the dashboard, never raised in a thread
            on_error(exc)

    threading.Thread(target=run, name="ralphnb-dashboard-action", daemon=True).start()


class _Row:
    """The buttons of one worker row: Stop, Kill, Log (and Review while it waits for one)."""

    def __init__(self, dash: Dashboard, task_id: str) -> None:
        def btn(label: str, tip: str, style: str) -> W.Button:
            return W.Button(
                description=label,
                tooltip=f"{tip} {task_id}",
                button_style=style,
                layout=W.Layout(
                    width="52px",
                    min_width="52px",
                    padding="0",
                    height=f"{ROW_PX - 4}px",
                    margin="2px 2px",
                ),
            )

        self.task_id = task_id
        self.stop = btn("Stop", "Stop", "warning")
        self.kill = btn("Kill", "Kill", "danger")
        self.log = btn("Log", "Log", "")
        self.stop.on_click(lambda _b: dash._act(self, "stop"))
        self.kill.on_click(lambda _b: dash._act(self, "kill"))
        self.log.on_click(lambda _b: dash.show_log(task_id))
        self.review = btn("Review", "Review", "info")  # shown while the task waits for review
        self.review.layout.width = self.review.layout.min_width = "64px"
        self.review.layout.display = "none"
        self.review.on_click(lambda _b: dash.review.show(task_id))
        self.box = W.HBox(
            [self.stop, self.kill, self.log, self.review],
            layout=W.Layout(height=f"{ROW_PX}px", margin="0", overflow="hidden"),
        )


class Dashboard(W.VBox):
    """Live view of one Loop: header, worker table with Stop/Kill/Log buttons, log tail.

    Build it with `dashboard(loop)` (one per loop). `refresh()` renders once, synchronously;
    the render thread calls it when the loop reports a change (throttled to `max_rate`/s)
    and once a second while workers are live (elapsed, CPU).
    """

    def __init__(
        self, loop: Any, *, max_rate: float = 4.0, tick: float = 1.0, start: bool = True
    ) -> None:
        # long but flat: the dashboard's widgets built and wired, one after another
        self.loop = loop
        self.min_interval = 1.0 / max_rate
        self.tick = tick
        self.render_count = 0
        self._rows: dict[str, _Row] = {}
        self._requested: dict[str, set[str]] = {}
        self._log_task: str | None = None
        self._log_shown: str | None = None
        self._log_next = 0.0
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._render_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], Any] | None = None
        self.finished = False
        self._finishing = False  # the loop said loop_finished; its `finished` follows soon
        self.sampler = Sampler(loop)  # public: the dashboard benchmark reads its counts

        def head_btn(label: str, action: str, style: str) -> W.Button:
            b = W.Button(
                description=label,
                tooltip=f"{label} (whole loop)",
                button_style=style,
                layout=W.Layout(width="80px"),
            )
            b.on_click(lambda _b: self._loop_action(action))
            return b

        self.pause_button = head_btn("Pause", "pause", "")
        self.resume_button = head_btn("Resume", "resume", "")
        self.stop_all_button = head_btn("Stop all", "stop_all", "warning")
        self.message = W.HTML("")
        # the live budget: spent / limit in the header, a field to change the limit, a banner
        self.budget_input = W.FloatText(
            description="Budget $", step=1.0, layout=W.Layout(width="170px")
        )
        self.budget_button = W.Button(description="Set", layout=W.Layout(width="50px"))
        self.budget_button.on_click(lambda _b: self.set_budget(self.budget_input.value))
        self.banner = W.HTML("")
        budget = getattr(loop, "budget", None)
        if budget is not None and budget.limit is not None:
            self.budget_input.value = budget.limit
        self.table = W.HTML("", layout=W.Layout(margin="0", flex="0 0 auto"))
        self._spacer = W.Box(layout=W.Layout(height=f"{TOP_PX + HEAD_PX}px", margin="0"))
        self.buttons = W.VBox(
            [self._spacer], layout=W.Layout(margin="0", padding="0", flex="0 0 auto")
        )
        self.log_title = W.HTML("")
        self.log_view = W.HTML("", layout=W.Layout(display="none"))
        self.log_close = W.Button(description="Close log", layout=W.Layout(display="none"))
        self.log_close.on_click(lambda _b: self.show_log(None))
        self.review = ReviewPanel(loop, on_change=self._dirty.set)  # the Review buttons open it
        self.log_raw = W.ToggleButton(
            description="Raw log",
            tooltip="Raw log lines instead of the transcript",
            layout=W.Layout(display="none"),
        )
        self.log_raw.observe(lambda _c: self._log_changed(), names="value")
        super().__init__(
            [
                W.HBox([self.pause_button, self.resume_button, self.stop_all_button, self.message]),
                W.HBox([self.budget_input, self.budget_button, self.banner]),
                W.HBox(
                    [self.table, self.buttons],
                    layout=W.Layout(align_items="flex-start", overflow="auto hidden"),
                ),
                self.review,
                W.HBox([self.log_title, self.log_raw, self.log_close]),
                self.log_view,
            ]
        )
        self.add_class("ralphnb-dashboard")
        self.refresh()
        if start:
            self.start()

    # -- threads -----------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe to the loop and start the render thread (idempotent)."""
        if self._thread is not None or self._closed.is_set():
            return
        self._unsubscribe = self.loop.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="ralphnb-dashboard", daemon=True)
        self._thread.start()

    def _on_event(self, event: Any = None, *_args: Any) -> None:
        # called from the loop's threads: only flag, never touch widgets here
        if getattr(event, "kind", None) == "loop_finished":
            self._finishing = True
        self._dirty.set()

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                woke = self._dirty.wait(timeout=0.05 if self._finishing else self.tick)
                if self._closed.is_set():
                    break
                self._dirty.clear()
                done = loop_finished(self.loop)
                if woke or self._has_live() or done:
                    self.refresh()
                if done:
                    self.finished = True
                    break
                self._closed.wait(self.min_interval)  # the throttle: at most max_rate renders/s
        finally:
            self._detach()

    def _detach(self) -> None:
        unsub, self._unsubscribe = self._unsubscribe, None
        if unsub is not None:
            try:
                unsub()
            except Exception:
                pass

    def close(self) -> None:
        """Stop the render thread and close the widgets (safe to call twice, and from
        `Widget.__del__` during garbage collection: no lock is taken a second time)."""
        closed = getattr(self, "_closed", None)
        if closed is None or closed.is_set():
            return
        closed.set()
        self._dirty.set()  # wake the render thread now
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        self._detach()
        with _DASH_LOCK:
            if _DASHBOARDS.get(self.loop) is self:
                del _DASHBOARDS[self.loop]
        parts: list[W.Widget] = [
            w for r in self._rows.values() for w in (r.stop, r.kill, r.log, r.review, r.box)
        ]
        self.review.close()
        parts += [
            self.pause_button,
            self.resume_button,
            self.stop_all_button,
            self.message,
            self.table,
            self.buttons,
            self._spacer,
            self.log_title,
            self.log_view,
            self.log_close,
            self.log_raw,
            *self.children,
        ]
        for w in parts:
            w.close()
        super().close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the render thread to end; True if it has."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _has_live(self) -> bool:
        return any(
            r.stop.disabled is False or r.kill.disabled is False for r in self._rows.values()
        )

    # -- actions -----------------------------------------------------------------------
    def _act(self, row: _Row, action: str) -> None:
        """Button handler: runs loop.stop/kill(task_id) in a thread; never blocks."""
        self._requested.setdefault(row.task_id, set()).add(action)
        (row.stop if action == "stop" else row.kill).disabled = True
        if action == "kill":
            row.stop.disabled = True
        fn = getattr(self.loop, action)
        _call_in_thread(lambda: fn(row.task_id), lambda e: self._report(action, row.task_id, e))
        self._dirty.set()

    def _loop_action(self, action: str) -> None:
        _call_in_thread(getattr(self.loop, action), lambda e: self._report(action, None, e))
        self._dirty.set()

    def set_budget(self, limit: float | None) -> None:
        """The control's action: `loop.budget.set(limit)` (in a thread, as every button)."""
        budget = getattr(self.loop, "budget", None)
        if budget is not None:
            _call_in_thread(lambda: budget.set(limit), lambda e: self._report("budget", None, e))
        self._dirty.set()

    def _report(self, action: str, task_id: str | None, exc: BaseException) -> None:
        what = f"{action} {task_id}" if task_id else action
        self.message.value = (
            f'<span style="color:#b91c1c">{html.escape(what)} failed: '
            f"{html.escape(str(exc))}</span>"
        )

    def show_log(self, task_id: str | None) -> None:
        """Open the live transcript of a task below the table (its raw log tail with the Raw
        log toggle; None closes it)."""
        self._log_task = task_id
        self._log_changed()

    def _log_changed(self) -> None:
        self._log_shown = None  # render the log view at the next pass
        self._dirty.set()
        if self._thread is None or not self._thread.is_alive():
            self.refresh()

    # -- rendering ---------------------------------------------------------------------
    def refresh(self) -> None:
        """One render pass: snapshot the loop, set every widget value in one hold_sync."""
        with self._render_lock:
            self._render()

    def _render(self) -> None:
        # one pass over the rows: table HTML, buttons kept in step, header, log and banner
        self.render_count += 1
        now = datetime.now(UTC)
        recs = self.sampler.records()
        latest = latest_by_task(recs)
        head = header(self.loop, recs, now)
        paused = bool(self.loop.paused)
        if paused:
            head += " | paused"
        spent, banner = budget_text(self.loop)
        head += f" | budget {spent}" if spent else ""
        table = html_table(recs, now=now, head=head, fixed_rows=True)
        ids = [str(r.get("task_id")) for r in latest]
        for tid in ids:
            if tid not in self._rows:
                self._rows[tid] = _Row(self, tid)
        finished = loop_finished(self.loop)
        log_value, log_title = self.log_view.value, self.log_title.value
        if self._log_task is None:
            log_value = log_title = ""
            self._log_shown = None
        elif self._log_task != self._log_shown or time.monotonic() >= self._log_next:
            # the log tail is a second message per render: at most one a second
            self._log_shown, self._log_next = self._log_task, time.monotonic() + 1.0
            raw = bool(self.log_raw.value)
            log_title = f"<b>{'log' if raw else 'transcript'} {html.escape(self._log_task)}</b>"
            body = (
                f'<pre style="margin:4px;font-size:11px">'
                f"{html.escape(log_text(self.loop, self._log_task))}</pre>"
                if raw
                else live_html(self.loop, self._log_task)
            )
            log_value = (
                '<div style="display:flex;flex-direction:column-reverse;max-height:320px;'
                f'overflow:auto;border:1px solid #d1d5db">{body}</div>'
            )
        with self.hold_sync():
            for rec in latest:
                row = self._rows[str(rec.get("task_id"))]
                st = str(record_value(rec, "status") or "")
                asked = self._requested.get(row.task_id, set())
                live = st in ACTIVE and not finished
                with row.stop.hold_sync(), row.kill.hold_sync():
                    _set(row.stop, "disabled", not live or st == "stopping" or bool(asked))
                    _set(row.kill, "disabled", not live or "kill" in asked)
                    _set(row.review.layout, "display", "" if st == "review" else "none")
            boxes = [self._rows[t].box for t in ids]
            if list(self.buttons.children[1:]) != boxes:
                self.buttons.children = [self._spacer, *boxes]
            _set(self.table, "value", table)
            _set(self.pause_button, "disabled", finished or paused)
            _set(self.resume_button, "disabled", finished or not paused)
            _set(self.stop_all_button, "disabled", finished)
            _set(self.budget_button, "disabled", finished or not spent)
            _set(self.banner, "value", _banner(banner))
            _set(self.log_title, "value", log_title)
            _set(self.log_view, "value", log_value)
            shown = "block" if self._log_task else "none"
            if self.log_view.layout.display != shown:
                self.log_view.layout.display = shown
                self.log_close.layout.display = "" if self._log_task else "none"
                self.log_raw.layout.display = "" if self._log_task else "none"

    def __repr__(self) -> str:
        return text_table(records(self.loop))


def _banner(text: str) -> str:
    if not text:
        return ""
    style = "background:#fef3c7;border:1px solid #f59e0b;padding:2px 6px;border-radius:3px"
    return f'<span class="ralphnb-banner" style="{style}">{html.escape(text)}</span>'


def _set(widget: W.Widget, name: str, value: Any) -> None:
    if getattr(widget, name) != value:
        setattr(widget, name, value)


_DASHBOARDS: weakref.WeakKeyDictionary[Any, Dashboard] = weakref.WeakKeyDictionary()
_DASH_LOCK = threading.RLock()  # reentrant: GC may close an old dashboard while held


def dashboard(loop: Any, **kwargs: Any) -> Dashboard:
    """The loop's dashboard: created once per loop, shown as often as you like."""
    with _DASH_LOCK:
        dash = _DASHBOARDS.get(loop)
        if dash is None or dash._closed.is_set():
            dash = Dashboard(loop, **kwargs)
            _DASHBOARDS[loop] = dash
        return dash


def mimebundle(
    loop: Any, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
) -> dict[str, Any]:
    """What `Loop._repr_mimebundle_` returns: text/plain and text/html always, plus the
    widget view when a kernel is present (a static render then still shows the table)."""
    recs = records(loop)
    now = datetime.now(UTC)
    head = header(loop, recs, now)
    data: dict[str, Any] = {
        "text/plain": text_table(recs, now=now, head=head),
        "text/html": html_table(recs, now=now, head=head),
    }
    if in_kernel():
        view = dashboard(loop)._repr_mimebundle_()
        if isinstance(view, tuple):
            view = view[0]
        if VIEW_MIME in view:
            data[VIEW_MIME] = view[VIEW_MIME]
    if include is not None:
        keep = set(include)
        data = {k: v for k, v in data.items() if k in keep}
    if exclude is not None:
        drop = set(exclude)
        data = {k: v for k, v in data.items() if k not in drop}
    return data


__all__ = [
    "ACTIVE",
    "VIEW_MIME",
    "Dashboard",
    "dashboard",
    "diff_view",
    "in_kernel",
    "mimebundle",
    "transcript_html",
]
