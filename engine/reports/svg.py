"""Charts for reports, drawn one way: inline SVG, no plotting library.

A :class:`Chart` is a plot area with a linear x and y range; marks are given in data coordinates and the
chart maps them to pixels. :meth:`Chart.svg` returns markup a template embeds as is (every text in it is
escaped here). The colours are the reports' own: grey for the reference or "before", blue for production or
"after", red for what is out of bounds, green for what is within.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from markupsafe import Markup, escape

GREY = "#9e9e9e"
BLUE = "#1565c0"
RED = "#c62828"
GREEN = "#2e7d32"
ORANGE = "#ef6c00"
INK = "#1d1d1f"
FONT = 'font-family="sans-serif"'


def _n(v: float) -> str:
    return f"{v:.1f}"


class Chart:
    """One SVG figure: ``width`` x ``height`` pixels, the plot area inside ``margin`` (top, right, bottom, left),
    data ranges ``x`` and ``y`` (low, high)."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float], *,
                 margin: tuple[int, int, int, int] = (24, 12, 36, 48), title: str = "", label: str = "chart") -> None:
        self.width, self.height = width, height
        self.top, self.right, self.bottom, self.left = margin
        self.x0, self.x1 = float(x[0]), float(x[1]) if x[1] != x[0] else float(x[0]) + 1.0
        self.y0, self.y1 = float(y[0]), float(y[1]) if y[1] != y[0] else float(y[0]) + 1.0
        self.parts: list[str] = [f'<rect width="{width}" height="{height}" fill="#fff"/>']
        self.label = label
        self.legend_entries: list[tuple[str, str, str]] = []
        if title:
            self.text_px(self.left, 14, title, size=12, bold=True)

    # ---------------------------------------------------------------- coordinates

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.plot_width

    def py(self, y: float) -> float:
        return self.top + self.plot_height - (y - self.y0) / (self.y1 - self.y0) * self.plot_height

    # ---------------------------------------------------------------- marks

    def rect(self, x0: float, x1: float, y0: float, y1: float, fill: str, opacity: float = 1.0,
             gap: float = 0.0) -> Chart:
        """A filled rectangle between data coordinates; ``gap`` pixels are left off its right side."""
        a, b = sorted((self.px(x0), self.px(x1)))
        c, d = sorted((self.py(y0), self.py(y1)))
        op = "" if opacity >= 1 else f' fill-opacity="{opacity:g}"'
        self.parts.append(f'<rect x="{_n(a)}" y="{_n(c)}" width="{_n(max(0.5, b - a - gap))}" '
                          f'height="{_n(d - c)}" fill="{fill}"{op}/>')
        return self

    def bars(self, edges: Sequence[float], heights: Sequence[float], fill: str, opacity: float = 1.0,
             gap: float = 0.6) -> Chart:
        """A histogram's bars: bar ``i`` from ``edges[i]`` to ``edges[i + 1]``, ``heights[i]`` high."""
        for i, v in enumerate(heights):
            self.rect(edges[i], edges[i + 1], 0.0, v, fill, opacity, gap)
        return self

    def steps(self, edges: Sequence[float], heights: Sequence[float], stroke: str, width: float = 1.6) -> Chart:
        """A histogram's outline, from the baseline up and back down."""
        pts = [(edges[0], 0.0)]
        for i, v in enumerate(heights):
            pts += [(edges[i], v), (edges[i + 1], v)]
        pts.append((edges[len(heights)], 0.0))
        return self.line([p[0] for p in pts], [p[1] for p in pts], stroke, width)

    def line(self, xs: Iterable[float], ys: Iterable[float], stroke: str, width: float = 1.5,
             dash: str | None = None, label: str | None = None) -> Chart:
        pts = " ".join(f"{_n(self.px(x))},{_n(self.py(y))}" for x, y in zip(xs, ys))
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width:g}"{d}/>')
        if label:
            self.legend_entries.append((label, stroke, "line"))
        return self

    def hline(self, y: float, stroke: str, dash: str | None = "5 3", label: str | None = None) -> Chart:
        return self.line((self.x0, self.x1), (y, y), stroke, 1.2, dash, label)

    def vline(self, x: float, stroke: str, dash: str | None = "4 3", label: str | None = None) -> Chart:
        return self.line((x, x), (self.y0, self.y1), stroke, 1.2, dash, label)

    def hband(self, y0: float, y1: float, fill: str, opacity: float = 0.2, label: str | None = None) -> Chart:
        self.rect(self.x0, self.x1, max(y0, self.y0), min(y1, self.y1), fill, opacity)
        if label:
            self.legend_entries.append((label, fill, "band"))
        return self

    def text(self, x: float, y: float, s: str, **kw: object) -> Chart:
        return self.text_px(self.px(x), self.py(y), s, **kw)

    def text_px(self, x: float, y: float, s: str, size: int = 10, anchor: str = "start", fill: str = INK,
                bold: bool = False) -> Chart:
        weight = ' font-weight="bold"' if bold else ""
        self.parts.append(f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" {FONT} text-anchor="{anchor}" '
                          f'fill="{fill}"{weight}>{escape(s)}</text>')
        return self

    # ---------------------------------------------------------------- axes

    def baseline(self) -> Chart:
        y = self.py(max(self.y0, min(0.0, self.y1)))
        self.parts.append(f'<line x1="{_n(self.left)}" y1="{_n(y)}" x2="{_n(self.left + self.plot_width)}" '
                          f'y2="{_n(y)}" stroke="#333" stroke-width="0.8"/>')
        return self

    def xticks(self, ticks: Iterable[tuple[float, str]], label: str = "") -> Chart:
        y = self.top + self.plot_height
        for v, s in ticks:
            self.text_px(self.px(v), y + 13, s, anchor="middle")
        if label:
            self.text_px(self.left + self.plot_width / 2, self.height - 4, label, size=11, anchor="middle")
        return self

    def yticks(self, ticks: Iterable[tuple[float, str]], label: str = "", grid: bool = True) -> Chart:
        for v, s in ticks:
            y = self.py(v)
            if grid:
                self.parts.append(f'<line x1="{_n(self.left)}" y1="{_n(y)}" x2="{_n(self.left + self.plot_width)}" '
                                  f'y2="{_n(y)}" stroke="#ddd"/>')
            self.text_px(self.left - 4, y + 4, s, anchor="end")
        if label:
            x, y = 11, self.top + self.plot_height / 2
            self.parts.append(f'<text x="{x}" y="{_n(y)}" font-size="11" {FONT} text-anchor="middle" '
                              f'transform="rotate(-90 {x} {_n(y)})">{escape(label)}</text>')
        return self

    def frame(self) -> Chart:
        self.parts.append(f'<rect x="{_n(self.left)}" y="{_n(self.top)}" width="{_n(self.plot_width)}" '
                          f'height="{_n(self.plot_height)}" fill="none" stroke="#999" stroke-width="0.8"/>')
        return self

    def legend(self, entries: Sequence[tuple[str, str]] = ()) -> Chart:
        """Swatches at the top right: the labelled marks, and ``entries`` (label, colour) besides."""
        items = [(lbl, c, "box") for lbl, c in entries] + self.legend_entries
        x = self.width - self.right
        for lbl, colour, kind in reversed(items):
            w = 7 * len(lbl) + 18
            x -= w
            if kind == "line":
                self.parts.append(f'<line x1="{_n(x)}" y1="10" x2="{_n(x + 12)}" y2="10" stroke="{colour}" '
                                  f'stroke-width="2"/>')
            else:
                op = ' fill-opacity="0.35"' if kind == "band" else ""
                self.parts.append(f'<rect x="{_n(x)}" y="5" width="11" height="10" fill="{colour}"{op}/>')
            self.text_px(x + 15, 14, lbl)
        return self

    def svg(self) -> Markup:
        return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                      f'viewBox="0 0 {self.width} {self.height}" role="img" aria-label="{escape(self.label)}">'
                      + "".join(self.parts) + "</svg>")


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low`` to ``high``: about ``count`` of them at 1, 2 or 5 times a power of ten."""
    import math

    span = high - low
    if span <= 0 or not math.isfinite(span):
        return [low]
    raw = span / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]
