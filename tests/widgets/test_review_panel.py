"""The review panel follows the classes of the model that runs: a few as keyed buttons, many as a list."""

from widgets.review_panel import MAX_CLASS_BUTTONS, ReviewPanel

COCO80 = [f"class{i}" for i in range(80)]


def test_a_few_classes_are_buttons_three_to_a_row(qtbot):
    panel = ReviewPanel(["scratch", "dent", "contamination", "burr"])
    qtbot.addWidget(panel)
    assert [b.text() for b in panel.class_buttons] == ["scratch  (1)", "dent  (2)", "contamination  (3)", "burr  (4)"]
    assert panel.class_combo.isHidden()
    rows = {panel.classes_row.getItemPosition(panel.classes_row.indexOf(b))[0] for b in panel.class_buttons}
    assert rows == {0, 1}
    panel.set_reviewing(True)
    with qtbot.waitSignal(panel.reclass) as got:
        panel.class_buttons[3].click()
    assert got.args == ["burr"]


def test_eighty_classes_are_a_list_and_the_panel_stays_narrow(qtbot):
    panel = ReviewPanel(["scratch", "dent", "contamination"])
    qtbot.addWidget(panel)
    narrow = panel.sizeHint().width()
    panel.set_classes(COCO80)
    assert panel.class_buttons == [] and not panel.class_combo.isHidden()
    assert panel.class_combo.count() == 80 and panel.class_combo.itemText(0) == "class0  (1)"
    assert panel.class_combo.itemText(MAX_CLASS_BUTTONS) == f"class{MAX_CLASS_BUTTONS}"
    assert panel.sizeHint().width() <= max(narrow, 400)  # not a row of 80 buttons
    panel.set_reviewing(True)
    assert panel.class_combo.isEnabled()
    with qtbot.waitSignal(panel.reclass) as got:
        panel.class_combo.activated.emit(41)
    assert got.args == ["class41"]
    panel.set_classes(["scratch", "dent"])  # back to a model with few classes
    assert panel.class_combo.isHidden() and len(panel.class_buttons) == 2
