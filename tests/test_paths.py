from pathlib import Path

from smolora_engine import paths


def test_home_moves_all_three_folders(smolora_home):
    assert paths.config_dir() == smolora_home / "config"
    assert paths.data_dir() == smolora_home / "data"
    assert paths.cache_dir() == smolora_home / "cache"
    assert paths.project_file("x") == smolora_home / "config" / "projects" / "x.toml"
    assert paths.runs_dir("x") == smolora_home / "data" / "projects" / "x" / "runs"


def test_without_home_uses_platformdirs(monkeypatch):
    monkeypatch.delenv("SMOLORA_HOME")
    assert "smolora-tui" in str(paths.config_dir())
    assert paths.config_dir() != paths.data_dir() or paths.config_dir().parts[-1] == "smolora-tui"
    assert Path.home() in paths.cache_dir().parents


def test_project_names():
    assert paths.check_project_name("my-model_2.1") is None
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65, "spaces here"):
        assert paths.check_project_name(bad)
