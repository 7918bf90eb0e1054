"""Reports, one look for all: Jinja2 templates in ``resources/reports`` with one stylesheet, inlined.

:func:`render` fills a template and returns one self-contained HTML page: the stylesheet
(``resources/reports/report.css``) is written into the page, figures are inline SVG
(:mod:`engine.reports.svg`) and images are PNG data URIs (:func:`png_uri`), so a report is a single
file that opens and prints anywhere. Autoescaping is on: every value a template shows is escaped
unless it is :class:`markupsafe.Markup` (the charts).

Every report ends with one footer line (``base.html.j2``): the audit chain's head when the report was made,
``audit_anchor`` as :func:`engine.security.anchor.stamp` gives it (None: no trail in that data folder). It is a
required argument of :func:`render`, so no report can leave it out; each printed report is one more copy of the
head kept outside the database.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from typing import Any

import cv2
import jinja2
import numpy as np
from markupsafe import Markup

TEMPLATES = "reports"  # under resources/
STYLESHEET = "report.css"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import resources

    folder = resources.path(TEMPLATES)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.globals["stylesheet"] = Markup((folder / STYLESHEET).read_text(encoding="utf-8"))
    return env


def render(template: str, *, audit_anchor: dict[str, Any] | None, **context: Any) -> str:
    """The page ``template`` (a file in ``resources/reports``) with ``context``; the one stylesheet inlined, and
    the audit chain's head (``audit_anchor``) in the footer."""
    return environment().get_template(template).render(audit_anchor=audit_anchor, **context)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_uri(image: np.ndarray, max_width: int = 640) -> str:
    """A BGR image as a PNG data URI, no wider than ``max_width`` pixels; empty if it cannot be encoded."""
    h, w = image.shape[:2]
    if w > max_width:
        image = cv2.resize(image, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image)
    return data_uri(png.tobytes()) if ok else ""
