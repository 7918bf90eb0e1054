"""The model registry from the command line: add, list, promote, rollback, signed and audited; the champion is the
model the station runs, also after a restart. Real files, real SQLite, real inference."""

import json

import pytest

from app.cli import main
from app.cli.credentials import PIN_ENV
from app.cli.users import NEW_PIN_ENV
from engine.core.config import default_config
from engine.core.errors import StationError
from engine.inference import registry
from engine.runtime.station import ModelChoice, Station
from engine.security import audit
from tests.model_files import perturbed_model


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def secured(data_dir, monkeypatch, capsys):
    """A station with an admin (100), an operator (200) and an engineer (400)."""
    d = str(data_dir)
    monkeypatch.setenv(NEW_PIN_ENV, "1234")
    assert run(capsys, "users", "add", "100", "--name", "Ada Admin", "--data-dir", d)[0] == 0
    monkeypatch.setenv(PIN_ENV, "1234")
    for badge, role in (("200", "operator"), ("400", "engineer")):
        monkeypatch.setenv(NEW_PIN_ENV, f"{badge}0")
        assert run(capsys, "users", "add", badge, "--role", role, "--badge", "100", "--data-dir", d)[0] == 0
    monkeypatch.delenv(PIN_ENV)
    monkeypatch.delenv(NEW_PIN_ENV)
    return data_dir


def test_add_list_promote_rollback_signed_by_an_engineer_and_audited(secured, tmp_path, monkeypatch, capsys):
    d = str(secured)
    code, out, _ = run(capsys, "model", "list", "--json", "--data-dir", d)
    assert code == 0 and [(r["name"], r["status"]) for r in json.loads(out)] == [("builtin", "champion")]
    a = perturbed_model(tmp_path, "challenger-a")
    code, out, _ = run(capsys, "model", "add", str(a), "--data-dir", d)
    assert code == 0 and "as a challenger" in out
    name = out.split()[1]
    assert (secured / "models" / f"{name}.pt").is_file() and (secured / "models" / f"{name}.json").is_file()
    assert run(capsys, "model", "add", str(a), "--data-dir", d)[1].endswith("(challenger)\n")  # once only

    monkeypatch.setenv(PIN_ENV, "2000")  # an operator may not
    code, _, err = run(capsys, "model", "promote", name, "--badge", "200", "--data-dir", d)
    assert code == 2 and "needs the engineer role" in err
    monkeypatch.setenv(PIN_ENV, "9999")  # a wrong PIN
    code, _, err = run(capsys, "model", "promote", name, "--badge", "400", "--data-dir", d)
    assert code == 2 and registry.champion(secured).name == "builtin"
    monkeypatch.setenv(PIN_ENV, "4000")
    code, out, _ = run(capsys, "model", "promote", name[2:8], "--badge", "400", "--data-dir", d)  # a hash prefix
    assert code == 0 and f"{name} (challenger-a) is the champion; builtin is retired" in out
    b = perturbed_model(tmp_path, "challenger-b", shift=-0.25)  # a path: added, then promoted
    code, out, err = run(capsys, "model", "promote", str(b), "--badge", "400", "--data-dir", d)
    assert code == 0 and "added m-" in err
    statuses = {r["title"]: r["status"] for r in json.loads(run(capsys, "model", "list", "--json", "--data-dir", d)[1])}
    assert statuses == {"tiny-centernet-defects": "retired", "challenger-a": "retired", "challenger-b": "champion"}

    code, out, _ = run(capsys, "model", "rollback", "--badge", "400", "--data-dir", d)
    assert code == 0 and f"{name} (challenger-a) is the champion again" in out
    assert run(capsys, "model", "rollback", "--badge", "400", "--data-dir", d)[0] == 0
    assert registry.champion(secured).name == "builtin"
    code, _, err = run(capsys, "model", "rollback", "--badge", "400", "--data-dir", d)
    assert code == 2 and "no earlier champion" in err

    trail = audit.entries(secured)
    changes = [(e["action"], e["user"], json.loads(e["old_value"])["sha256"][:12], json.loads(e["new_value"])["name"])
               for e in trail if e["action"] in ("model_promoted", "model_rolled_back")]
    assert [c[0] for c in changes] == ["model_promoted", "model_promoted", "model_rolled_back", "model_rolled_back"]
    assert all(c[1] == "400" for c in changes)
    assert changes[0][2] == registry.builtin_entry("champion").sha256[:12] and changes[0][3] == name
    assert any(e["action"] == "model promote_refused" and e["user"] == "200" for e in trail)
    assert audit.verify(secured).ok


def test_the_champion_is_what_a_new_station_runs_after_a_restart_and_an_explicit_model_wins(data_dir, tmp_path):
    entry, new = registry.add(data_dir, perturbed_model(tmp_path, "survivor"))
    assert new and entry.status == "challenger"
    registry.promote(data_dir, entry.name)
    station = Station(default_config(), data_dir, feedback=False)  # a fresh start on the same data folder
    assert station.follows_champion and station.model.path == str(entry.path)
    det = station.load_model()
    assert "survivor" in det.name and det.sha256 == entry.sha256
    explicit = Station(default_config(), data_dir, model=ModelChoice("none"), feedback=False)
    assert not explicit.follows_champion and explicit.model.path == "none"
    assert "is not used" in registry.choice_note(data_dir, "other.onnx")


def test_a_damaged_registry_is_one_sentence(data_dir, tmp_path, capsys):
    registry.add(data_dir, perturbed_model(tmp_path, "soon-damaged"))
    registry.state_path(data_dir).write_text('{"format": "inspection-station model registry", "mod', encoding="utf-8")
    code, _, err = run(capsys, "model", "list", "--data-dir", str(data_dir))
    assert code == 2 and "is damaged" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(StationError, match="is damaged"):
        Station(default_config(), data_dir, feedback=False, strict=True)
    lenient = Station(default_config(), data_dir, feedback=False)  # the window: the built-in model, and why
    assert lenient.model.path is None and "is damaged" in lenient.model_note


def test_run_headless_says_it_runs_the_champion_or_the_model_asked_for(data_dir, tmp_path, capsys):
    entry, _ = registry.add(data_dir, perturbed_model(tmp_path, "headless-champion"))
    registry.promote(data_dir, entry.name)
    src = "sim://?seed=3&width=320&height=256"
    code, _, err = run(capsys, "run", "--headless", "--source", src, "--frames", "2", "--data-dir", str(data_dir))
    assert code == 0 and f"model: the champion {entry.name} (headless-champion" in err
    code, _, err = run(capsys, "run", "--headless", "--source", src, "--frames", "2", "--model", "none",
                       "--data-dir", str(data_dir))
    assert code == 0 and f"model none as asked for; the registry's champion {entry.name}" in err


def test_an_onnx_model_is_registered_with_a_card_and_runs_as_champion(data_dir, tmp_path):
    from tests.model_files import onnx_model

    path = onnx_model(tmp_path / "user.onnx")
    entry, new = registry.add(data_dir, path)
    assert new and entry.path.suffix == ".onnx" and entry.card["sha256"] == entry.sha256
    registry.promote(data_dir, registry.resolve(data_dir, entry.sha256[:6]).name)
    det = Station(default_config(), data_dir, feedback=False).load_model()
    assert det.sha256 == entry.sha256
