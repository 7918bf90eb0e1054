import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from markupsafe import Markup

from engine.reports import environment, png_uri, render
from engine.reports.svg import Chart, ticks


def test_every_report_is_one_page_with_the_one_stylesheet_inlined_and_values_escaped():
    text = render("audit.html.j2", audit_anchor=None, rows=[{"id": 1, "user": "<b>x</b>"}], columns=("id", "user"),
                  ok=True, sentence="the chain is intact", generated="2026-01-01 00:00:00 UTC",
                  generated_by="Ann & Bob")
    assert text.startswith("<!DOCTYPE html>") and text.count("<style>") == 1
    css = environment().globals["stylesheet"]
    assert str(css).strip() in text and "@media print" in css
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text and "Ann &amp; Bob" in text
    assert not re.search(r"<link|(src|href)=['\"]?(https?:|file:|/)", text)
    with pytest.raises(Exception, match="undefined"):
        render("audit.html.j2", audit_anchor=None, rows=[])  # a missing value is an error, not an empty space
    with pytest.raises(TypeError, match="audit_anchor"):  # no report without the audit chain's head
        render("audit.html.j2", rows=[], columns=(), ok=True, sentence="", generated="", generated_by="")
    assert "Audit chain head: no audit trail in this data folder" in text


def test_a_chart_is_well_formed_svg_with_its_text_escaped():
    c = Chart(300, 200, (0, 10), (0, 1), title="a < b & c")
    c.bars([0, 5, 10], [0.2, 0.8], "#999").line([0, 10], [0, 1], "#00f", label="x & y").hline(0.5, "#f00")
    c.hband(0.1, 0.3, "#0f0", label="band").xticks([(0, "0"), (10, "10")], "x").yticks([(0, "0"), (1, "1")], "y")
    svg = c.legend().svg()
    assert isinstance(svg, Markup)
    root = ET.fromstring(str(svg))
    assert root.tag.endswith("svg") and root.get("width") == "300"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "a < b & c" in texts and "x & y" in texts
    # Data coordinates map onto the plot area: y up, x right.
    assert c.px(0) == c.left and c.px(10) == c.width - c.right
    assert c.py(0) == c.height - c.bottom and c.py(1) == c.top


def test_ticks_are_round_numbers_covering_the_range():
    assert ticks(0, 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert ticks(-7, 23) == pytest.approx([0, 10, 20]) and ticks(-7, 23, 10) == pytest.approx([-5, 0, 5, 10, 15, 20])
    assert ticks(3, 3) == [3]


def test_images_are_embedded_as_png_no_wider_than_asked():
    import base64

    import cv2

    uri = png_uri(np.zeros((100, 1000, 3), np.uint8), max_width=200)
    assert uri.startswith("data:image/png;base64,")
    img = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (20, 200, 3)
