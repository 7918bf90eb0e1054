"""The challenge as text for the terminal and as an HTML report (``resources/reports/challenge.html.j2``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.files import write_atomic
from engine.inference.registry import lineage_text
from engine.reports import render
from engine.reports.svg import BLUE, GREEN, GREY, RED, Chart

ROLES = ("champion", "challenger")


def _iv(iv: dict[str, Any], points: bool = False) -> str:
    if iv.get("value") is None:
        return "n/a"
    k = 100.0 if points else 1.0
    fmt = "{:+.1f}" if points else "{:.3f}"
    return f"{fmt.format(iv['value'] * k)} [{fmt.format(iv['low'] * k)}, {fmt.format(iv['high'] * k)}]"


def _drawn(ev: dict[str, Any]) -> str:
    b = int(ev.get("bootstrap_block_frames", 1))
    return "resampled frame by frame" if b <= 1 else f"resampled in blocks of {b} consecutive frames"


def text_summary(r: dict[str, Any]) -> str:
    lines = [f"champion   {r['champion']['name']} ({r['champion']['title']}), threshold {r['champion']['confidence']:g}",
             (f"challenger {r['challenger']['name']} ({r['challenger']['title']}), threshold "
              f"{r['challenger']['confidence']:g}"),
             f"{r['options']['resamples']} bootstrap resamples of frames; 95 % intervals in brackets"]
    for ev in r["evidence"].values():
        lines.append(f"{ev['name']}: {ev['frames']} frames, {ev['truth_boxes']} truth boxes, {_drawn(ev)} "
                     f"({ev['description']})")
        for s in ev["sources"]:
            lines.append(f"  {s}")
        if not ev["frames"]:
            continue
        for role in ROLES:
            o = ev[role]["overall"]
            lines.append(f"  {role:<10} F1 {_iv(o['f1'])}  precision {_iv(o['precision'])}  recall "
                         f"{_iv(o['recall'])}  mAP@0.5 {_iv(o['ap50'])}")
        lines.append(f"  F1 difference (challenger - champion), points: {_iv(ev['difference']['f1'], True)}")
    lines.append(f"verdict: {r['verdict']['reason']} ({r['seconds']:.0f} s)")
    return "\n".join(lines)


def _f1_chart(r: dict[str, Any]) -> Any:
    names = [k for k, ev in r["evidence"].items() if ev["frames"]]
    ch = Chart(560, 220, (0, max(1, len(names))), (0, 1), title="F1 with 95 % intervals", label="F1 per evidence")
    for i, k in enumerate(names):
        for j, (role, colour) in enumerate(zip(ROLES, (GREY, BLUE))):
            iv = r["evidence"][k][role]["overall"]["f1"]
            if iv["value"] is None:
                continue
            x0 = i + 0.15 + j * 0.35
            ch.rect(x0, x0 + 0.3, 0, iv["value"], colour, 0.85)
            xm = x0 + 0.15
            ch.line([xm, xm], [iv["low"], iv["high"]], "#1d1d1f", 1.5)
    ch.xticks([(i + 0.5, k) for i, k in enumerate(names)])
    ch.yticks([(v, f"{v:.1f}") for v in (0, 0.2, 0.4, 0.6, 0.8, 1.0)], "F1")
    return ch.frame().svg()


def write_report(r: dict[str, Any], out: Path, data_dir: Path, config: dict[str, Any] | None = None) -> Path:
    from engine.core.config import station_id
    from engine.security.anchor import stamp

    html = render("challenge.html.j2", audit_anchor=stamp(Path(data_dir), station_id(config or {})), r=r,
                  chart=_f1_chart(r), roles=ROLES, grey=GREY, blue=BLUE, green=GREEN, red=RED,
                  metrics=("precision", "recall", "f1", "ap50"), fmt=_iv, drawn=_drawn,
                  lineage={role: lineage_text(r[role].get("lineage")) for role in ROLES})
    write_atomic(Path(out), html)
    return Path(out)
