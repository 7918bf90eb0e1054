import pytest

from engine.core.config import ConfigError, default_config, load_config, prepare_data_dir


def test_defaults_load_and_a_file_overrides_them(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[source]\nuri = "cam://1"\n[pipeline]\nretry_max_s = 2\n')
    merged = load_config(cfg)
    assert merged["source"]["uri"] == "cam://1"
    assert merged["pipeline"]["retry_max_s"] == 2.0 and isinstance(merged["pipeline"]["retry_max_s"], float)
    assert merged["display"] == default_config()["display"]


@pytest.mark.parametrize("text, message", [
    ('[source]\nurl = "x"\n', "unknown setting 'source.url'"),
    ("[nonsense]\nx = 1\n", "unknown setting 'nonsense'"),
    ('[pipeline]\nfrozen_after = "many"\n', "pipeline.frozen_after must be a int"),
    ("[display]\nshow_ground_truth = 1\n", "must be true or false"),
    ("[source\n", "not valid TOML"),
])
def test_bad_config_files_name_the_key(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_missing_explicit_config_and_unusable_data_dir(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be created"):
        prepare_data_dir(blocker / "data")
    assert prepare_data_dir(tmp_path / "new" / "data").is_dir()


# ------------------------------------------------------------------ ranges


def _numeric_keys(table, prefix=""):
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _numeric_keys(value, name)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value


def test_every_numeric_default_has_a_range_that_holds_it():
    from engine.core.config import ranges

    table = ranges()["settings"]
    numeric = dict(_numeric_keys(default_config()))
    assert sorted(set(numeric) - set(table)) == []  # a new numeric setting needs its range in setting_ranges.toml
    assert sorted(set(table) - set(numeric)) == []  # and the table names no setting that is gone
    for name, value in numeric.items():
        assert value in table[name], f"the default {name} = {value!r} is outside its own range {table[name]}"


@pytest.mark.parametrize("text, key", [
    ("[drift.relative_tolerance]\nmean_luma = -0.06\n", "drift.relative_tolerance.mean_luma"),
    ("[drift.relative_tolerance]\nfocus = nan\n", "drift.relative_tolerance.focus"),
    ("[drift.absolute_tolerance]\nclip_dark = inf\n", "drift.absolute_tolerance.clip_dark"),
    ("[drift]\nbatch_frames = 0\n", "drift.batch_frames"),
    ("[security]\nmax_failures = 0\n", "security.max_failures"),
    ("[security]\nmax_failures = -3\n", "security.max_failures"),
    ("[agreement]\ndrift_p = 1.0\n", "agreement.drift_p"),
    ("[export]\nthreads = 0\n", "export.threads"),
    ("[pipeline]\nretry_initial_s = 10.0\nretry_max_s = 2.0\n", "pipeline.retry_initial_s"),
    ("[agreement]\nboundary_low = 0.8\nboundary_high = 0.2\n", "agreement.boundary_low"),
])
def test_settings_out_of_range_are_refused_naming_the_key(tmp_path, text, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert key in msg and str(cfg) in msg and "\n" not in msg


def test_a_setting_at_the_edge_of_its_range_is_taken(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[security]\nmax_failures = 1\n[drift]\nbatch_frames = 1\n[pipeline]\nfrozen_after = 0\n")
    merged = load_config(cfg)
    assert merged["security"]["max_failures"] == 1 and merged["drift"]["batch_frames"] == 1


def test_the_command_line_refuses_an_out_of_range_setting_in_one_sentence(tmp_path, capsys):
    from app.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text("[drift]\nbatch_frames = 0\n")
    assert main(["--config", str(cfg), "--data-dir", str(tmp_path / "data"), "run", "--headless",
                 "--source", "sim://?width=160&height=128", "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert "drift.batch_frames must be between 1 and 100000, not 0" in err and err.count("\n") == 1
