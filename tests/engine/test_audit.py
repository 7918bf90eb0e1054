"""The audit trail on a real SQLite file: append-only, hash-chained, and covering every decision."""

import csv
import hashlib
import itertools
import json
import sqlite3
import warnings

import numpy as np
import pytest

from engine.security import audit
from engine.security.auth import AuthError, AuthStore, Policy
from engine.storage.db import DB_NAME, MIGRATIONS, connect
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.core.frame import Box


def frame(seq=1):
    img = np.random.default_rng(seq).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    boxes = (Box(5, 5, 15, 20, 0, "scratch", 0.8), Box(25, 5, 35, 20, 1, "dent", 0.6))
    return FrameForReview(img, "sim:test", seq, 1000.0 + seq, boxes, "builtin abc", "cpu", "ref1", {}, None, "sample")


def decide(store, seq, verdict="confirm", operator="ana", **kw):
    d = Decision(frame(seq), operator, verdict, detection=0 if verdict in ("confirm", "reject") else None, **kw)
    return store.submit(d).result(10)


@pytest.fixture
def populated(tmp_path):
    """A station with users, failed and good sign-ins, and decisions."""
    auth = AuthStore(tmp_path, Policy(max_failures=3))
    admin = auth.add_user("100", "Ada Admin", "admin", "1234", None)
    auth.add_user("200", "Otto Operator", "operator", "5555", admin)
    with pytest.raises(AuthError):
        auth.authenticate("200", "0000")
    auth.authenticate("200", "5555")
    store = FeedbackStore(tmp_path)
    acks = [decide(store, i, operator="200") for i in range(1, 4)]
    store.close()
    return tmp_path, acks


def raw(path):
    return sqlite3.connect(path / DB_NAME, isolation_level=None)


def test_an_untouched_trail_verifies_and_records_who_did_what(populated):
    path, acks = populated
    v = audit.verify(path)
    assert v.ok, v.sentence()
    rows = audit.entries(path)
    assert v.entries == len(rows) and v.head == rows[-1]["hash"]
    assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    actions = [r["action"] for r in rows]
    assert actions[:6] == ["audit_started", "user_added", "sign_in", "user_added", "sign_in_failed", "sign_in"]
    decisions = [r for r in rows if r["action"] == "decision"]
    assert len(decisions) == 3
    d = decisions[0]
    assert d["user"] == "200" and d["role"] == "operator" and d["model_version"] == "builtin abc"
    assert d["meaning"] == "reviewed" and d["time_utc"].endswith("Z")
    new = json.loads(d["new_value"])
    assert new["decision_id"] == acks[0].decision_id and new["verdict"] == "confirm"
    # Each hash is SHA-256 over the previous hash and the canonical JSON of the entry's fields.
    for prev, r in itertools.pairwise(rows):
        body = {k: r[k] for k in audit.FIELDS}
        text = prev["hash"] + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert r["prev_hash"] == prev["hash"] and r["hash"] == hashlib.sha256(text.encode()).hexdigest()


def test_triggers_reject_update_and_delete(populated):
    path, _ = populated
    con = raw(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE audit_log SET reason = 'nothing happened' WHERE id = 5")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM audit_log WHERE id = 5")
    con.close()
    assert audit.verify(path).ok


def drop_triggers(con):
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("DROP TRIGGER audit_log_no_delete")


def test_editing_an_audit_row_after_dropping_the_triggers_names_that_entry(populated):
    path, _ = populated
    con = raw(path)
    drop_triggers(con)
    con.execute("UPDATE audit_log SET reason = 'all fine' WHERE id = 5")  # hide the failed sign-in
    con.close()
    v = audit.verify(path)
    assert not v.ok and v.broken_id == 5 and "changed" in v.reason
    assert "entry 5" in v.sentence()


def test_rewriting_an_entry_with_a_fresh_hash_breaks_the_link_of_the_next(populated):
    path, _ = populated
    con = raw(path)
    drop_triggers(con)
    row = dict(zip([c[0] for c in con.execute("SELECT * FROM audit_log WHERE id = 5").description],
                   con.execute("SELECT * FROM audit_log WHERE id = 5").fetchone()))
    row["user"] = "100"
    con.execute("UPDATE audit_log SET user = ?, hash = ? WHERE id = 5", [row["user"], audit.entry_hash(row)])
    con.close()
    v = audit.verify(path)
    assert not v.ok and v.broken_id == 6 and "link" in v.reason


def test_deleting_audit_rows_is_found_in_the_middle_and_at_the_end(populated):
    path, _ = populated
    con = raw(path)
    drop_triggers(con)
    n = con.execute("SELECT max(id) FROM audit_log").fetchone()[0]
    con.execute("DELETE FROM audit_log WHERE id = ?", [n])  # the last entry: a decision's
    con.close()
    v = audit.verify(path)
    assert not v.ok and v.broken_id == n and "removed" in v.reason
    con = raw(path)
    con.execute("DELETE FROM audit_log WHERE id = 4")
    con.close()
    v = audit.verify(path)
    assert not v.ok and v.broken_id == 4 and "missing" in v.reason


def test_editing_a_decision_row_names_the_entry_that_recorded_it(populated):
    path, acks = populated
    entry = next(r["id"] for r in audit.entries(path) if r["action"] == "decision"
                 and json.loads(r["new_value"])["decision_id"] == acks[1].decision_id)
    con = raw(path)
    con.execute("UPDATE decisions SET verdict = 'reject' WHERE id = ?", [acks[1].decision_id])
    con.close()
    v = audit.verify(path)
    assert not v.ok and v.broken_id == entry and f"decision {acks[1].decision_id}" in v.reason


def test_deleting_a_decision_row_is_found(populated):
    path, acks = populated
    con = raw(path)
    con.execute("DELETE FROM decisions WHERE id = ?", [acks[2].decision_id])
    con.close()
    v = audit.verify(path)
    assert not v.ok and f"decision {acks[2].decision_id}" in v.reason and "deleted" in v.reason


def test_a_decision_slipped_in_outside_the_station_is_found(populated):
    path, _ = populated
    con = raw(path)
    frame_id = con.execute("SELECT frame_id FROM decisions LIMIT 1").fetchone()[0]
    con.execute("INSERT INTO decisions (review_id, frame_id, operator, time_utc, verdict) "
                "VALUES ('extra', ?, '200', 0, 'unsure')", [frame_id])
    con.close()
    v = audit.verify(path)
    assert not v.ok and "no audit entry" in v.reason


def test_decisions_made_before_the_trail_began_are_covered_by_its_first_entry(tmp_path):
    # A station at schema 2 (no audit yet) with decisions, then upgraded.
    db = connect(tmp_path / DB_NAME, migrate=False)
    for number, m in enumerate(MIGRATIONS[:2], start=1):
        m(db)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("INSERT INTO images VALUES ('abc', 1, 1, 1, 0)")
    db.execute("INSERT INTO frames (id, image_sha256, source, sequence, timestamp, detections, stats, created) "
               "VALUES (1, 'abc', 's', 1, 1, '[]', '{}', 0)")
    for i in range(3):
        db.execute("INSERT INTO decisions (review_id, frame_id, operator, time_utc, verdict) VALUES (?, 1, 'old', ?,"
                   " 'unsure')", [f"r{i}", float(i)])
    db.conn.close()
    store = FeedbackStore(tmp_path)  # opening it upgrades the database
    decide(store, 7)
    store.close()
    first = audit.entries(tmp_path)[0]
    assert first["action"] == "audit_started" and json.loads(first["new_value"])["decisions"] == 3
    assert audit.verify(tmp_path).ok
    con = raw(tmp_path)
    con.execute("UPDATE decisions SET operator = 'someone else' WHERE review_id = 'r1'")
    con.close()
    v = audit.verify(tmp_path)
    assert not v.ok and v.broken_id == 1 and "before the trail began" in v.reason


def test_pruned_decisions_are_recorded_so_the_trail_still_verifies(tmp_path):
    store = FeedbackStore(tmp_path, max_image_bytes=1)
    for i in range(1, 5):
        decide(store, i)
    store.close()
    store = FeedbackStore(tmp_path, max_image_bytes=1)
    assert store.prune() > 0
    store.close()
    rows = audit.entries(tmp_path)
    pruned = [r for r in rows if r["action"] == "decisions_pruned"]
    assert pruned and len(json.loads(pruned[0]["new_value"])["decisions"]) >= 1
    assert audit.verify(tmp_path).ok


def test_clock_jumps_are_logged_backwards_and_against_the_monotonic_clock(tmp_path):
    db = connect(tmp_path / DB_NAME)
    # The trail's first entry was stamped with the real clocks; the entries below follow it by 100 s on both
    # clocks, so only the jumps they are given count, whatever the date, the uptime or the machine's speed.
    wall0, mono0 = db.execute("SELECT wall, mono FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    t, m = wall0 + 100.0, mono0 + 100.0

    def add(now, mono):
        db.execute("BEGIN IMMEDIATE")
        audit.append(db, "setting_changed", user="200", now=now, mono=mono)
        db.execute("COMMIT")

    add(t, m)
    add(t + 10, m + 10)  # normal
    add(t + 5, m + 20)  # the wall clock went back
    add(t + 4000, m + 30)  # a forward jump of about an hour in 10 s
    db.conn.close()
    rows = audit.entries(tmp_path)
    jumps = [r for r in rows if r["action"] == "clock_jump"]
    assert len(jumps) == 2
    assert "went back" in jumps[0]["reason"] and "against the monotonic clock" in jumps[1]["reason"]
    assert [r["action"] for r in rows[-5:]] == ["setting_changed", "clock_jump", "setting_changed", "clock_jump",
                                                "setting_changed"]
    assert audit.verify(tmp_path).ok


def test_export_writes_a_printable_record_and_a_csv(populated, tmp_path):
    path, _ = populated
    html_file = tmp_path / "trail.html"
    v = audit.export(path, html_file, generated_by="Ada Admin")
    text = html_file.read_text()
    assert v.ok and "<table class=\"trail\">" in text and "sign_in_failed" in text and "intact" in text and "Ada Admin" in text
    assert text.count("<tr>") == v.entries + 1
    csv_file = tmp_path / "trail.csv"
    audit.export(path, csv_file)
    rows = list(csv.DictReader(csv_file.open()))
    assert len(rows) == v.entries and rows[4]["action"] == "sign_in_failed" and rows[4]["user"] == "200"
    assert not list(tmp_path.glob("*.tmp"))


def test_downstream_qc_rows_are_covered_like_operator_decisions(tmp_path):
    store = FeedbackStore(tmp_path)
    decide(store, 1)
    assert store.record_qc([{"source": "sim:test", "sequence": 1, "class": "dent", "box": (1, 2, 3, 4),
                             "inspector": "qc-anna"}]).result(10) == [None]
    store.close()
    e = audit.entries(tmp_path)[-1]
    assert e["action"] == "decision" and e["user"] == "qc-anna" and audit.verify(tmp_path).ok


# ---------------------------------------------------------------------------- model files against their card


def test_model_weights_that_do_not_match_their_card_are_not_loaded(tmp_path):
    import shutil

    import torch
    from torch import nn

    from engine.inference import ModelError, load_detector
    from engine.inference.builtin import BuiltinDetector, builtin_paths, sha256_of

    weights, card = builtin_paths()
    w, c = tmp_path / "det.pt", tmp_path / "det.json"
    shutil.copy(weights, w)
    shutil.copy(card, c)
    assert BuiltinDetector(w, device="cpu").sha256 == json.loads(c.read_text())["sha256"]
    state = torch.load(w, weights_only=True)
    next(iter(state.values())).view(-1)[0] += 0.001  # one weight, slightly changed
    torch.save(state, w)
    with pytest.raises(ModelError, match="does not match its model card"):
        BuiltinDetector(w, device="cpu")

    class Boxes(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 1, 6) + 0 * x.mean()

    model = tmp_path / "mine.torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, and still what many ship
        torch.jit.save(torch.jit.trace(Boxes(), torch.zeros(1, 3, 32, 32)), str(model),
                       _extra_files={"config.txt": json.dumps({"names": ["scratch"], "imgsz": [32, 32]})})
    load_detector(model, device="cpu")  # no card beside it: loaded, its hash in its name
    (tmp_path / "mine.json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ModelError, match="does not match its model card"):
        load_detector(model, device="cpu")
    (tmp_path / "mine.json").write_text(json.dumps({"sha256": sha256_of(model)}))
    assert load_detector(model, device="cpu").sha256 == sha256_of(model)


def test_settings_edited_in_the_config_file_reach_the_trail(data_dir):
    from engine.core.config import default_config

    cfg = default_config()
    assert len(audit.record_settings(data_dir, cfg, "st")) > 10  # first sight: everything in force
    assert audit.record_settings(data_dir, cfg, "st") == []  # nothing changed: nothing written
    cfg["drift"]["relative_tolerance"]["focus"] = 0.5
    assert audit.record_settings(data_dir, cfg, "st") == ["drift.relative_tolerance.focus"]
    last = audit.entries(data_dir)[-1]
    assert last["action"] == "settings_changed" and "drift.relative_tolerance.focus" in last["reason"]
    assert audit.verify(data_dir).ok
