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
