"""Anchors: the audit chain's head kept outside the database catches a trail rewritten inside it.

Both attacks are made on a real station.sqlite with plain SQL and the station's own hashing code, as someone who
can write the file would make them, and both pass ``audit verify`` without anchors: cutting the tail (triggers
dropped, the last entries and their decisions deleted, sqlite_sequence fixed) and editing a decision then
recomputing the whole chain. ``audit verify --anchor`` catches both, naming the first divergence.
"""

import json
import socket
import sqlite3

import numpy as np
import pytest

from app.cli import main
from engine.core.frame import Box
from engine.review.feedback import Decision, FeedbackStore, FrameForReview
from engine.security import anchor, audit
from engine.security.auth import AuthStore
from engine.storage.db import DB_NAME


def _frame(seq):
    img = np.random.default_rng(seq).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return FrameForReview(img, "sim:test", seq, 1000.0 + seq, (Box(5, 5, 15, 20, 0, "scratch", 0.8),), "builtin",
                          "cpu", "ref1", {}, None, "sample")


def _decide(data, seqs):
    store = FeedbackStore(data)
    try:
        for seq in seqs:
            verdict = "reject" if seq % 3 == 0 else "confirm"
            store.submit(Decision(_frame(seq), "200", verdict, detection=0)).result(10)
    finally:
        store.close()


@pytest.fixture
def station(tmp_path):
    """A station with users, sign-ins and twelve decisions, each recorded in the trail."""
    data = tmp_path / "data"
    data.mkdir()
    auth = AuthStore(data, station="line-3")
    admin = auth.add_user("100", "Ada Admin", "admin", "1234", None)
    auth.add_user("200", "Otto Operator", "operator", "5555", admin)
    auth.authenticate("200", "5555")
    _decide(data, range(1, 13))
    return data


def _anchor(data, out, capsys=None):
    assert main(["audit", "anchor", "--out", str(out), "--data-dir", str(data)]) == 0
    return json.loads(out.read_text())


def _verify(data, *anchors):
    argv = ["audit", "verify", "--json", "--data-dir", str(data)]
    for a in anchors:
        argv += ["--anchor", str(a)]
    return main(argv)


def _raw(data):
    return sqlite3.connect(data / DB_NAME, isolation_level=None)


def _drop_triggers(con):
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("DROP TRIGGER audit_log_no_delete")


def _restore_triggers(con):
    con.execute("""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""")
    con.execute("""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""")


def cut_the_tail(data, keep):
    """Delete every entry after ``keep`` and the decisions they record; fix sqlite_sequence; triggers back."""
    con = _raw(data)
    _drop_triggers(con)
    for (new,) in con.execute("SELECT new_value FROM audit_log WHERE id > ? AND action = 'decision'", [keep]
                              ).fetchall():
        con.execute("DELETE FROM decisions WHERE id = ?", [json.loads(new)["decision_id"]])
    con.execute("DELETE FROM audit_log WHERE id > ?", [keep])
    con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_log'", [keep])
    _restore_triggers(con)
    con.close()


def rewrite_a_decision(data):
    """Turn a rejection into a confirmation, then recompute its entry and every hash after it with the station's
    own hashing code; the id of the entry that recorded it."""
    con = _raw(data)
    con.row_factory = sqlite3.Row
    _drop_triggers(con)
    did = con.execute("SELECT id FROM decisions WHERE verdict = 'reject' ORDER BY id LIMIT 1").fetchone()[0]
    con.execute("UPDATE decisions SET verdict = 'confirm', new_class = old_class WHERE id = ?", [did])
    row = dict(con.execute("SELECT * FROM decisions WHERE id = ?", [did]).fetchone())
    entry = next(dict(r) for r in con.execute("SELECT * FROM audit_log WHERE action = 'decision'")
                 if json.loads(r["new_value"])["decision_id"] == did)
    new = json.loads(entry["new_value"])
    new.update(verdict="confirm", decision_sha256=audit.decision_hash(row))
    con.execute("UPDATE audit_log SET new_value = ? WHERE id = ?", [audit.canonical(new), entry["id"]])
    prev = con.execute("SELECT hash FROM audit_log WHERE id = ?", [entry["id"] - 1]).fetchone()[0]
    for r in [dict(r) for r in con.execute("SELECT * FROM audit_log WHERE id >= ? ORDER BY id", [entry["id"]])]:
        r["prev_hash"] = prev
        r["hash"] = audit.entry_hash(r)
        con.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", [r["prev_hash"], r["hash"], r["id"]])
        prev = r["hash"]
    _restore_triggers(con)
    con.close()
    return entry["id"]


def test_an_anchor_holds_the_head_and_an_untouched_trail_passes_several(station, tmp_path, capsys):
    first = _anchor(station, tmp_path / "a1.json")
    rows = audit.entries(station)
    assert first["format"] == anchor.FORMAT and first["last_id"] == rows[-1]["id"] == first["entries"]
    assert first["hash"] == rows[-1]["hash"] and first["last_time_utc"] == rows[-1]["time_utc"]
    assert first["station_id"] and first["anchored_utc"]
    assert not list(tmp_path.glob(".a1.json*"))  # no temporary left beside it
    _decide(station, range(20, 24))
    second = _anchor(station, tmp_path / "a2.json")
    assert second["last_id"] > first["last_id"]
    capsys.readouterr()
    assert _verify(station, tmp_path / "a1.json", tmp_path / "a2.json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["anchors"] == 2
    assert main(["audit", "verify", "--anchor", str(tmp_path / "a2.json"), "--data-dir", str(station)]) == 0
    assert "holds the head of every anchor given (1)" in capsys.readouterr().out


def test_cutting_the_tail_passes_plain_verify_but_not_the_anchor(station, tmp_path, capsys):
    a = _anchor(station, tmp_path / "anchor.json")
    keep = a["last_id"] - 5
    cut_the_tail(station, keep)
    capsys.readouterr()
    assert _verify(station) == 0  # the chain alone cannot tell
    assert json.loads(capsys.readouterr().out)["ok"]
    assert _verify(station, tmp_path / "anchor.json") == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and out["broken_entry"] == keep + 1
    assert out["reason"].startswith(f"cut short after entry {keep} ")
    assert f"holds entry {a['last_id']} of {a['entries']}" in out["reason"]
    main(["audit", "verify", "--anchor", str(tmp_path / "anchor.json"), "--data-dir", str(station)])
    assert capsys.readouterr().out.strip().startswith(f"audit trail broken at entry {keep + 1}: cut short after entry "
                                                      f"{keep} (anchor ")


def test_cutting_the_tail_and_writing_new_entries_in_its_place_is_a_re_chain(station, tmp_path, capsys):
    a = _anchor(station, tmp_path / "anchor.json")
    cut_the_tail(station, a["last_id"] - 5)
    _decide(station, range(30, 36))  # the trail is as long again, with other entries
    capsys.readouterr()
    assert _verify(station) == 0
    assert _verify(station, tmp_path / "anchor.json") == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["reason"].startswith(
        f"re-chained at or before entry {a['last_id']} ")


def test_editing_a_decision_and_recomputing_the_chain_passes_plain_verify_but_not_the_anchor(station, tmp_path,
                                                                                             capsys):
    early = _anchor(station, tmp_path / "early.json")
    _decide(station, range(40, 43))
    late = _anchor(station, tmp_path / "late.json")
    edited = rewrite_a_decision(station)
    assert edited <= early["last_id"]
    capsys.readouterr()
    assert _verify(station) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert _verify(station, tmp_path / "late.json", tmp_path / "early.json") == 1
    out = json.loads(capsys.readouterr().out)
    # The first divergence: the earlier anchor's head already differs.
    assert out["broken_entry"] == early["last_id"]
    assert out["reason"].startswith(f"re-chained at or before entry {early['last_id']} ")
    assert "early.json" in out["reason"] and late["last_id"] > early["last_id"]


@pytest.mark.parametrize("content, says", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    ('{"format": "something else"}', "is not an audit anchor"),
    ('{"format": "inspection-station audit anchor", "format_version": 1, "entries": 3}', "lacks the head's"),
    (('{"format": "inspection-station audit anchor", "format_version": 1, "entries": 3, "last_id": 3, '
      '"hash": "xyz", "last_time_utc": "t"}'), "holds no valid head"),
])
def test_a_bad_anchor_file_is_one_sentence_and_exit_status_2(station, tmp_path, capsys, content, says):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert _verify(station, bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and says in err


def test_a_broken_trail_is_not_anchored(station, tmp_path, capsys):
    con = _raw(station)
    _drop_triggers(con)
    con.execute("UPDATE audit_log SET reason = 'edited' WHERE id = 3")
    con.close()
    assert main(["audit", "anchor", "--out", str(tmp_path / "a.json"), "--data-dir", str(station)]) == 1
    assert "no anchor was written" in capsys.readouterr().out and not (tmp_path / "a.json").exists()
    assert main(["audit", "anchor", "--out", str(tmp_path / "a.json"), "--data-dir", str(tmp_path / "none")]) == 2
    assert "nothing to anchor" in capsys.readouterr().err


def test_the_head_goes_to_the_journal_when_there_is_one(station, tmp_path, monkeypatch):
    path = tmp_path / "journal.socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setattr(anchor, "JOURNAL_SOCKET", path)
    try:
        h = anchor.head(station, "line-3")
        assert anchor.journal(h) == "journald"
        fields = dict(line.split("=", 1) for line in sock.recv(65536).decode().splitlines())
    finally:
        sock.close()
    assert fields["AUDIT_HEAD_HASH"] == h.hash and fields["AUDIT_HEAD_ID"] == str(h.last_id)
    assert fields["SYSLOG_IDENTIFIER"] == "inspection-station" and fields["STATION_ID"] == "line-3"
    assert h.hash in fields["MESSAGE"]
    # No journal on this machine: nothing is sent, nothing is said.
    monkeypatch.setattr(anchor, "JOURNAL_SOCKET", tmp_path / "absent")
    monkeypatch.setattr(anchor, "JOURNAL_STDOUT", tmp_path / "absent")
    assert anchor.journal(h) == ""


def test_the_audit_report_ends_with_the_head(station, tmp_path):
    out = tmp_path / "trail.html"
    audit.export(station, out)
    h = anchor.head(station)
    text = out.read_text()
    assert f"entry {h.last_id} of {h.entries}, SHA-256 {h.hash}" in text and '<footer class="anchor">' in text


def test_every_bundle_carries_the_head_in_its_manifest(station, tmp_path):
    from engine.datasets.bundle import ExportOptions, export_bundle

    res = export_bundle(station, tmp_path / "bundle", ExportOptions(), "line-3")
    manifest = json.loads((res.path / "manifest.json").read_text())
    h = anchor.head(station)
    got = manifest["audit_anchor"]
    assert (got["last_id"], got["entries"], got["hash"], got["station_id"]) == (h.last_id, h.entries, h.hash,
                                                                                 "line-3")
    # A manifest's head is an anchor like any other: save it as a file and the trail is checked against it.
    kept = tmp_path / "from-manifest.json"
    kept.write_text(json.dumps(got))
    assert _verify(station, kept) == 0
