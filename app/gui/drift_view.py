"""The drift dock wired to the station's monitor (GUI thread).

Batches and trend marks are announced on the pipeline's worker; they reach this view through the window's task
runner and are drawn at most a few times a second. The stored history of a reference is read by the runner off
the GUI thread, once per reference; batches that arrive meanwhile wait so the charts stay in time order.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore

from engine.monitoring.drift import BatchPoint, DriftMonitor
from engine.runtime.station import trend_history

REDRAW_MS = 250


def time_to_limit(seconds: float | None) -> str:
    """A tile's status line for a metric that drifts: when its tolerance is reached at this trend (given only
    within the monitor's horizon), else "steady"."""
    if seconds is None:
        return "steady"
    if seconds < 3600:
        return f"limit in {max(1, round(seconds / 60))} min"
    return f"limit in {seconds / 3600:.1f} h"


def tile_states(mon: DriftMonitor) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Each tile's level and tooltip, and its status line, from the monitor's state."""
    warming = mon.warming_up
    levels, etas = {}, {}
    for k, m in mon.metrics.items():
        tip = f"{k}: {m.value:.4g} (reference {m.reference:.4g}, tolerance {m.low:.4g}..{m.high:.4g})"
        if warming:
            left = mon.warmup_batches - mon.batches
            levels[k] = ("warming", f"{k}: warming up, {left} more batch{'es' if left != 1 else ''} before it is charted")
        else:
            levels[k] = (m.level, tip)
            if m.level != "ok":
                etas[k] = time_to_limit(m.time_to_tolerance_s) if m.level == "warning" else "outside tolerance"
    levels["novel_rate"] = ("warming" if warming else mon.novelty_level, "share of recent frames unlike the reference")
    return levels, etas


class DriftView(QtCore.QObject):
    def __init__(self, w: Any) -> None:
        super().__init__(w)
        self.w = w
        self.panel = w.drift
        self._pending: list[BatchPoint] = []
        self._loading = 0  # history reads under way
        self._flush_timer = QtCore.QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(REDRAW_MS)
        self._flush_timer.timeout.connect(self.flush)
        s = w.station
        s.monitor_changed.connect(self.attach)  # on the thread that opens the source: the GUI thread
        s.batch.connect(w.tasks.deliver(self.add_batch))
        s.marked.connect(w.tasks.deliver(self.mark))

    def attach(self, monitor: DriftMonitor | None) -> None:
        d = self.panel
        if monitor is None:
            d.summary.setText("No reference active: statistics only, no drift alarms "
                              "(set [drift] reference in the config).")
            return
        ref = monitor.ref
        d.summary.setText(f"Reference {ref.id[:12]} ({ref.frames} frames, {ref.meta.get('source', '?')}); "
                          f"batches of {monitor.batch} frames")
        d.set_references({k: (m.reference, m.low, m.high) for k, m in monitor.metrics.items()})
        d.set_levels(*tile_states(monitor))
        if self.w.station.history_due(ref.id):  # months of minute aggregates, once per reference
            self._loading += 1
            self.w.tasks.run(trend_history, self.w.station.data_dir, ref.id, on_done=self._history,
                             on_error=self._history_failed)

    def _history(self, history: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        rows, events = history
        d = self.panel
        for k in d.metrics:
            mine = [r for r in rows if r["metric"] == k]
            d.append(k, [r["minute"] for r in mine], [r["mean"] for r in mine])
        for ev in events:
            d.add_event(ev["time"], ev["kind"])
        self._loading -= 1
        self.flush()

    def _history_failed(self, e: BaseException) -> None:
        self._loading -= 1
        self.w.report("error", f"the trend history cannot be read: {e}")
        self.flush()

    def add_batch(self, point: BatchPoint) -> None:
        self._pending.append(point)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def mark(self, when: float, kind: str) -> None:
        self.panel.add_event(when, kind)
        if kind == "recalibration":
            self.panel.redraw()

    def flush(self) -> None:
        """Draw the batches delivered since the last time (after the history, when one is being read)."""
        mon, d = self.w.station.monitor, self.panel
        if self._loading > 0:
            return
        points, self._pending = self._pending, []
        if points:
            for k in d.metrics:
                ts = [p.time for p in points if k in p.means]
                d.append(k, ts, [p.means[k] for p in points if k in p.means])
            for p in points:
                for a in p.alarms:
                    if a.severity in ("warning", "alarm") and a.name in p.means:
                        d.mark_alarm(a.name, p.time, p.means[a.name], a.severity)
        if mon is not None and points:
            levels, etas = tile_states(mon)
            d.set_levels(levels, etas)
            d.set_histograms(mon.window_histogram(), mon.ref.hist[0] / max(1, mon.ref.hist[0].sum()))
        d.redraw()
