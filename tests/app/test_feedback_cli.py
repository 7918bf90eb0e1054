import json

import numpy as np

from app.cli import main
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box


def test_import_qc_records_good_rows_and_names_the_bad_lines(tmp_path, capsys):
    data = tmp_path / "data"
    store = FeedbackStore(data)
    img = np.zeros((32, 32, 3), np.uint8)
    fr = FrameForReview(img, "sim:line", 7, 1.0, (Box(1, 1, 5, 5, 0, "scratch", 0.9),))
    store.submit(Decision(fr, "ana", "confirm", detection=0)).result(10)
    store.close()
    csv = tmp_path / "qc.csv"
    csv.write_text("source,sequence,class,x0,y0,x1,y1,inspector\n"
                   "sim:line,7,dent,2,2,9,9,qc-bob\n"        # line 2: good
                   "sim:line,7,bubble,2,2,9,9,qc-bob\n"      # line 3: unknown class
                   "sim:line,seven,dent,,,,,\n"              # line 4: not a number
                   "sim:line,8,dent,,,,,\n"                  # line 5: frame not kept
                   "sim:line,7,scratch,9,9,2,2,\n"           # line 6: inverted box
                   "sim:line,7,contamination,,,,,\n")        # line 7: good, no box
    assert main(["feedback", "import-qc", str(csv), "--data-dir", str(data)]) == 1
    out = capsys.readouterr().out
    for line in (3, 4, 5, 6):
        assert f"qc.csv:{line}:" in out
    assert "imported 2 of 6 rows" in out
    assert main(["feedback", "list", "--json", "--data-dir", str(data)]) == 0
    rows = json.loads(capsys.readouterr().out)
    qc = [r for r in rows if r["origin"] == "qc"]
    assert [(r["verdict"], r["new_class"], r["operator"]) for r in qc] == [("missed", "dent", "qc-bob"),
                                                                          ("missed", "contamination", "qc")]
    assert json.loads(qc[0]["new_box"]) == [2.0, 2.0, 9.0, 9.0]


def test_import_qc_refuses_a_file_without_the_columns(tmp_path):
    csv = tmp_path / "qc.csv"
    csv.write_text("frame,what\n1,dent\n")
    assert main(["feedback", "import-qc", str(csv), "--data-dir", str(tmp_path / "d")]) == 2
    assert main(["feedback", "import-qc", str(tmp_path / "none.csv"), "--data-dir", str(tmp_path / "d")]) == 2


def test_bench_feedback_prints_both_latencies(tmp_path, capsys):
    assert main(["bench", "feedback", "--decisions", "3", "--width", "320", "--height", "256",
                 "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "shown first" in out and "cold" in out and "p95 ms" in out
