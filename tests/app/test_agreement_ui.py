"""The agreement dashboard and the calibration exercise, driven as an engineer and an operator would."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from engine.datasets.agreement.gold import latest_calibrations, load_gold_set
from engine.datasets.agreement.ratings import ratings_from_store
from engine.datasets.agreement.report import Rating, report
from engine.core.config import default_config
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box
from widgets.agreement_dashboard import AgreementDashboard

LABELS = ["scratch", "dent", "contamination", "none"]


def _simulated_report() -> dict:
    rng = np.random.default_rng(3)
    acc = {"ann": lambda x: 0.95, "bob": lambda x: 0.85, "cat": lambda x: 0.95 if x < 0.5 else 0.95 - (x - 0.5),
           "dan": lambda x: 0.9}
    ratings = []
    for i in range(500):
        truth = LABELS[int(rng.integers(0, 4))]
        score = float(rng.uniform(0.1, 0.99))
        for name, a in acc.items():
            label = truth if rng.random() < a(i / 500) else str(rng.choice([x for x in LABELS if x != truth]))
            ratings.append(Rating(f"i{i}", name, label, float(i), score, truth))
    return report(ratings)


def test_dashboard_shows_matrix_trends_and_disputes(qtbot):
    rep = _simulated_report()
    dash = AgreementDashboard()
    qtbot.addWidget(dash)
    dash.resize(1100, 720)
    dash.set_report(rep)
    assert dash.matrix.rowCount() == 4 and dash.matrix.columnCount() == 4
    pair = {(p["a"], p["b"]): p["kappa"] for p in rep["pairwise"]}
    assert dash.matrix.item(0, 1).text() == f"{pair[('ann', 'bob')]:.2f}"
    assert dash.matrix.item(1, 0).text() == dash.matrix.item(0, 1).text() and dash.matrix.item(0, 0).text() == "—"
    assert set(dash.curves) == {"ann", "bob", "cat", "dan"}
    assert not dash.warnings.isHidden() and "cat" in dash.warnings.text()
    ops = {dash.operators.item(r, 0).text(): dash.operators.item(r, 8).text() for r in range(4)}
    assert ops["cat"] == "drifting" and ops["ann"] == "steady"
    assert dash.disputed.rowCount() == len(rep["disputed"]) > 0
    assert dash.breakdown.rowCount() == 2 + len(rep["per_class"])
    with qtbot.waitSignal(dash.disputed_selected) as sig:
        dash.disputed.selectRow(0)
    assert sig.args[0]["item"] == rep["disputed"][0]["item"]
    dash.show_preview(np.full((64, 80, 3), 128, np.uint8), (10, 10, 30, 30), "a frame")
    assert not dash.preview.pixmap().isNull()
    dash.tabs.setCurrentIndex(1)
    dash.show()
    qtbot.waitExposed(dash)
    dash.grab().save("/tmp/agreement_dashboard_trends.png")
    dash.tabs.setCurrentIndex(0)
    dash.grab().save("/tmp/agreement_dashboard.png")
    assert dash.act_refresh.shortcut().toString() == "Ctrl+R" and dash.act_csv.shortcut().toString() == "Ctrl+L"
    with qtbot.waitSignal(dash.refresh_requested):
        qtbot.mouseClick(dash.refresh_button, QtCore.Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(dash.csv_requested):
        dash.act_csv.trigger()


@pytest.fixture
def window(qtbot, data_dir):
    from app.gui.start import make_app
    from app.gui.window import MainWindow

    # two operators decided the same frames; bob rejects every third scratch
    store = FeedbackStore(data_dir)
    img = np.zeros((48, 64, 3), np.uint8)
    futs = []
    for seq in range(12):
        fr = FrameForReview(img + seq, "sim:line", seq, 100.0 + seq, (Box(4, 4, 20, 14, 0, "scratch", 0.45),))
        for op in ("ann", "bob"):
            wrong = op == "bob" and seq % 3 == 0
            futs.append(store.submit(Decision(fr, op, "reject" if wrong else "confirm", detection=0)))
    for f in futs:
        f.result(30)
    store.close()
    make_app()
    w = MainWindow(default_config(), data_dir, source="sim://?seed=1&scenario=nominal&width=320&height=256",
                   autostart=False, model="none")
    qtbot.addWidget(w)
    yield w
    w.close()


def test_dashboard_from_the_tools_menu_reads_the_store_off_the_gui_thread(qtbot, window):
    texts = [a.text() for a in window.tools_menu.actions()]
    assert "Annotator agreement…" in texts and "Calibration exercise…" in texts
    tools = window.agreement_tools
    assert tools.act_dashboard.shortcut().toString() == "Ctrl+Shift+A"
    tools.act_dashboard.trigger()
    qtbot.waitUntil(lambda: tools.dashboard is not None and tools.dashboard.report is not None, timeout=20000)
    rep = tools.dashboard.report
    assert rep["source"] == "store" and rep["overall"]["items"] == 12 and rep["disputed_total"] == 4
    qtbot.waitUntil(lambda: tools.worker is None, timeout=5000)
    tools.dashboard.disputed.selectRow(0)
    qtbot.waitUntil(lambda: not window.tasks.busy, timeout=10000)  # the picture is read off the GUI thread
    assert not tools.dashboard.preview.pixmap().isNull()  # the stored picture of the disputed frame


def test_calibration_exercise_scores_and_explains(qtbot, window, data_dir):
    tools = window.agreement_tools
    dlg = tools.open_exercise()
    assert dlg is not None
    gold = load_gold_set()
    dlg.operator.setText("newbie")
    qtbot.mouseClick(dlg.start_button, QtCore.Qt.MouseButton.LeftButton)
    assert dlg.stack.currentIndex() == 1 and "1 of" in dlg.progress.text()
    dlg.grab().save("/tmp/agreement_exercise_item.png")
    keys = {c: str(i + 1) for i, c in enumerate(gold.choices)}
    wrong = {it.id for it in gold.items if it.boundary and it.answer != "none"}
    for k, it in enumerate(gold.items):
        if k == 1:  # a slip, taken back with Backspace and answered again
            qtbot.keyClick(dlg, keys["none" if it.answer != "none" else "dent"])
            qtbot.keyClick(dlg, QtCore.Qt.Key.Key_Backspace)
        given = "none" if it.id in wrong else it.answer
        qtbot.keyClick(dlg, keys[given])
    assert dlg.stack.currentIndex() == 2
    res = tools.last_result
    assert res is not None and res["operator"] == "newbie"
    assert {d["item"] for d in res["disagreements"]} == wrong
    assert dlg.differences.count() == len(wrong)
    assert gold.criteria["scratch"][:40] in "\n".join(dlg.differences.item(i).text()
                                                      for i in range(dlg.differences.count()))
    saved = json.loads(tools.last_saved.read_text())
    assert saved["agreement"] == pytest.approx(1 - len(wrong) / len(gold.items), abs=1e-6)
    assert latest_calibrations(data_dir)["newbie"]["disagreements"] == len(wrong)
    dlg.grab().save("/tmp/agreement_exercise.png")
    dlg.close()


def test_dashboard_pixmap_helper_draws_the_box():
    from widgets.agreement_dashboard import _pixmap

    pm = _pixmap(np.zeros((20, 20, 3), np.uint8), (5, 5, 15, 15), QtCore.QSize(40, 40))
    img = pm.toImage()
    assert pm.width() == 40 and QtGui.QColor(img.pixel(10, 20)).red() > 200  # the box's left edge
    assert QtGui.QColor(img.pixel(20, 20)).red() == 0  # inside it, the picture


def test_blind_re_review_in_the_review_dock(qtbot, data_dir):
    from app.gui.start import make_app
    from app.gui.window import MainWindow

    store = FeedbackStore(data_dir)
    img = np.zeros((48, 64, 3), np.uint8)
    for seq in range(8):
        fr = FrameForReview(img + seq, "sim:line", seq, 100.0 + seq, (Box(4, 4, 20, 14, 0, "scratch", 0.45),),
                            ground_truth={"defects": [], "conditions": {}})
        store.submit(Decision(fr, "ann", "reject", detection=0)).result(30)
    store.close()
    config = default_config()
    config["agreement"].update(recheck_share_other=1.0, recheck_share_same=0.0, recheck_delay_frames=3)
    make_app()
    w = MainWindow(config, data_dir, source="sim://?seed=1&scenario=nominal&width=320&height=256",
                   autostart=False, model="none")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    try:
        tools = w.agreement_tools
        w.review.operator.setText("ann")
        assert tools.start_recheck()  # looked up on the task runner, off the GUI thread
        qtbot.waitUntil(lambda: not w.tasks.busy, timeout=10000)
        assert tools.last_recheck is None and "No stored frame" in w.review.status.text()  # not her own
        w.review.operator.setText("bob")
        assert tools.start_recheck()
        qtbot.waitUntil(lambda: not w.tasks.busy, timeout=10000)
        task = tools.last_recheck
        assert task is not None and task.original_operators == ("ann",) and w.station.review.frozen is task
        assert w.station.review.frame.queue_reason == "recheck-inter" and w.station.review.frame.sequence == 0
        assert "recheck-inter" in w.review.status.text() and "reject" not in w.review.status.text()
        assert w.live.overlay_counts == (1, 0)  # the model's box, no ground truth, no earlier verdict
        w.act_confirm.trigger()  # C: bob confirms what ann rejected
        qtbot.waitUntil(lambda: w.review.saved.text().startswith("Saved"), timeout=10000)
        rows = ratings_from_store(data_dir)
        bob = [r for r in rows if r.rater == "bob"]
        assert len(bob) == 1 and bob[0].label == "scratch" and bob[0].item == "f1/d0"
        assert [r.label for r in rows if r.item == "f1/d0" and r.rater == "ann"] == ["none"]
        w.station.review.toggle_freeze()  # back to live
        w.act_queue.trigger()  # N: the next frame due for a blind re-review comes before the live queue
        qtbot.waitUntil(lambda: not w.tasks.busy, timeout=10000)
        assert w.station.review.frame is not None and w.station.review.frame.queue_reason == "recheck-inter"
        assert w.station.review.frozen.frame_id == 2  # the next one due; frame 1 is done
        w.station.review.toggle_freeze()
        w.review.operator.setText("ann")
        w.act_queue.trigger()  # none due for ann (her own frames): N leaves the dock quiet
        qtbot.waitUntil(lambda: not w.tasks.busy, timeout=10000)
        assert w.station.review.frame is None and "No stored frame" not in w.review.status.text()
    finally:
        w.close()


def test_with_one_reviewer_the_dashboard_says_what_agreement_needs(qtbot):
    ratings = [Rating(f"i{i}", "ann", LABELS[i % 4], float(i), 0.6, None) for i in range(5)]
    dash = AgreementDashboard()
    qtbot.addWidget(dash)
    dash.resize(700, 500)
    dash.show()
    dash.set_report(report(ratings))
    assert dash.needs.text() == ("Agreement needs at least two reviewers on the same items: 1 reviewer, "
                                 "0 shared items so far.")
    assert not dash.needs.isHidden() and dash.tabs.isHidden()
    assert "n/a" not in dash.headline.text() + dash.summary.text()
    assert dash.headline.text().strip() != "0" and dash.headline.wordWrap() is False


def test_the_trend_axis_counts_whole_items(qtbot):
    dash = AgreementDashboard()
    qtbot.addWidget(dash)
    dash.set_report(_simulated_report())
    axis = dash.trend.getPlotItem().getAxis("bottom")
    for lo, hi in ((0.0, 1.0), (0.0, 7.3), (0.0, 500.0)):
        ticks = [v for _, values in axis.tickValues(lo, hi, 400) for v in values]
        assert ticks and all(v == int(v) for v in ticks) and ticks[0] >= 0
        assert axis.tickStrings(ticks, 1.0, 1.0)[0] == str(int(ticks[0]))
    (x0, _), _ = dash.trend.getPlotItem().vb.viewRange()
    assert x0 <= 0.5
