"""``model challenge`` end to end: the golden set, the held-out split of a dataset the station exported, and the
simulated reference line, both models run for real; JSON on stdout, progress on stderr, the HTML report."""

import json

from app.cli import main
from engine.inference import registry
from engine.inference.challenge import known_bundles
from engine.security import audit
from tests.engine.test_model_challenge import yolo_held_out
from tests.model_files import perturbed_model


def test_a_whole_challenge_on_the_golden_set_an_exported_held_out_split_and_the_replay(data_dir, tmp_path, capsys):
    bundle = yolo_held_out(tmp_path / "drifted")
    audit.record(data_dir, "exported", obj=str(bundle), user="ann")  # as `export` records a bundle it wrote
    assert known_bundles(data_dir) == [bundle]
    challenger = perturbed_model(tmp_path, "bolder", shift=0.5)
    report = tmp_path / "challenge.html"
    code = main(["model", "challenge", str(challenger), "--json", "--report", str(report), "--frames", "3",
                 "--seeds", "0", "--resamples", "200", "--data-dir", str(data_dir)])
    out = capsys.readouterr()
    assert code == 0
    assert "bundle drifted" in out.err and "replay seed 0" in out.err and "added m-" in out.err
    r = json.loads(out.out)
    ev = r["evidence"]
    assert ev["gold"]["frames"] == 24 and ev["bundles"]["frames"] == 6 and ev["replay"]["frames"] == 3
    assert "test split, 6 frames" in ev["bundles"]["sources"][0] and ev["bundles"]["truth_boxes"] >= 6
    for e in ev.values():
        assert set(e["challenger"]["per_class"]) >= {"scratch", "dent", "contamination"}
        for role in ("champion", "challenger"):
            f1 = e[role]["overall"]["f1"]
            assert f1["low"] <= f1["value"] <= f1["high"]
        d = e["difference"]["f1"]
        assert d["low"] <= d["value"] <= d["high"]
    assert r["champion"]["name"] == "builtin" and r["challenger"]["sha256"] == registry.resolve(
        data_dir, r["challenger"]["name"]).sha256
    assert isinstance(r["verdict"]["promote"], bool) and r["verdict"]["reason"]
    html = report.read_text(encoding="utf-8")
    assert "Model challenge" in html and r["challenger"]["name"] in html and "<svg" in html
    assert "Audit chain head of station" in html or "Audit chain head" in html
    code = main(["model", "challenge", "builtin", "--data-dir", str(data_dir)])
    assert code == 2 and "is the champion" in capsys.readouterr().err
