import pytest

from pipeline import config as configlib
from pipeline import config_check
from pipeline.errors import UserError
from tests.conftest import run_cli, small_config


def load_error(write_config, data, *overrides) -> str:
    with pytest.raises(UserError) as info:
        config_check.load(write_config(data), list(overrides))
    return str(info.value)


def test_defaults_come_from_the_schema(write_config):
    config = configlib.load(write_config(small_config()))
    assert config["verify"]["min_score"] == 0.0
    assert config["sample"]["teachers"][0]["max_steps"] == 8


def test_wrong_type_names_the_field_path(write_config):
    data = small_config()
    data["sample"]["teachers"][0]["samples_per_task"] = "two"
    assert "sample.teachers[0].samples_per_task: must be an integer" in load_error(write_config, data)


def test_missing_field_is_named(write_config):
    data = small_config()
    del data["synthesize"]["generators"][1]["count"]
    assert "synthesize.generators[1].count: missing required field" in load_error(write_config, data)


def test_unknown_key_suggests_the_right_one(write_config):
    data = small_config()
    data["run"]["rows_per_shrad"] = 3
    message = load_error(write_config, data)
    assert "run.rows_per_shrad: unknown key (did you mean 'rows_per_shard'?)" in message


def test_unknown_generator_suggests_a_registered_one(write_config):
    data = small_config()
    data["synthesize"]["generators"][0]["name"] = "arithmetik"
    assert "synthesize.generators[0].name: unknown generator 'arithmetik' (did you mean 'arithmetic'?)" in load_error(write_config, data)


def test_unknown_stage_in_run_stages_is_rejected(write_config):
    data = small_config()
    data["run"]["stages"] = ["synthesize", "sampel"]
    assert "run.stages[1]: must be one of" in load_error(write_config, data)


def test_set_overrides_nested_list_items(write_config):
    config = configlib.load(write_config(small_config()), ["sample.teachers[0].max_steps=3", "run.seed=9"])
    assert config["sample"]["teachers"][0]["max_steps"] == 3 and config["run"]["seed"] == 9


def test_set_with_a_bad_type_is_reported_like_the_yaml(write_config):
    message = load_error(write_config, small_config(), "verify.min_score=high")
    assert "verify.min_score: must be a number" in message


def test_stage_hashes_chain_and_ignore_operational_keys(write_config):
    base = configlib.load(write_config(small_config()))
    renamed = configlib.load(write_config(small_config()), ["run.name=other"])
    changed_verify = configlib.load(write_config(small_config()), ["verify.min_score=0.5"])
    assert renamed.stage_hash("curate") == base.stage_hash("curate")
    assert changed_verify.stage_hash("sample") == base.stage_hash("sample")
    assert changed_verify.stage_hash("verify") != base.stage_hash("verify")
    assert changed_verify.stage_hash("curate") != base.stage_hash("curate")


def test_cli_exits_nonzero_with_one_line_naming_the_field(write_config, tmp_path):
    data = small_config()
    data["verify"]["min_score"] = "high"
    proc = run_cli("run", write_config(data), "--run-dir", tmp_path / "run")
    assert proc.returncode == 2
    assert "verify.min_score: must be a number" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("run:\n  name: [unclosed\n")
    proc = run_cli("run", path)
    assert proc.returncode == 2 and f"{path}: not valid YAML at line" in proc.stderr


def test_serving_a_local_endpoint_keeps_every_stage_hash(write_config):
    from pipeline.llm.local import served_profile

    data = small_config()
    data["endpoints"] = {"local": {"base_url": "local", "model": "gemma-3-270m", "mode": "completion"}}
    data["sample"]["teachers"].append({"name": "gemma", "policy": "llm", "endpoint": "local", "formats": ["react"]})
    data["verify"]["judges"] = [{"name": "j", "endpoint": "local"}]
    config = configlib.load(write_config(data))
    served = configlib.Config({**config.data, "endpoints": {"local": served_profile(config["endpoints"]["local"], "http://127.0.0.1:9/v1")}}, config.path)
    assert [served.stage_hash(s) for s in configlib.STAGES] == [config.stage_hash(s) for s in configlib.STAGES]


def test_the_watch_of_a_served_local_endpoint_keeps_every_stage_hash(write_config):
    from pipeline.llm.local import served_profile

    data = small_config()
    data["endpoints"] = {"local": {"base_url": "local", "model": "gemma-3-270m", "mode": "completion"}}
    data["sample"]["teachers"].append({"name": "gemma", "policy": "llm", "endpoint": "local", "formats": ["react"]})
    config = configlib.load(write_config(data))
    watch = {"pid": 1234, "log": "/tmp/local-teacher.log", "note": "/tmp/.local-teacher-1234.died"}
    served = configlib.Config({**config.data, "endpoints": {"local": served_profile(config["endpoints"]["local"], "http://127.0.0.1:9/v1", watch)}},
                              config.path)
    assert served["endpoints"]["local"]["local_server"] == watch
    assert [served.stage_hash(s) for s in configlib.STAGES] == [config.stage_hash(s) for s in configlib.STAGES]


def test_step_level_sampling_settings_are_checked(write_config):
    data = small_config()
    data["endpoints"] = {"fake": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}
    data["sample"]["teachers"] = [{"name": "t", "policy": "llm", "endpoint": "fake", "samples_per_task": 2, "stop_after_passing": 3}]
    assert "sample.teachers[0].stop_after_passing: 3 is more than samples_per_task (2)" in load_error(write_config, data)
    data["sample"]["teachers"] = [{"name": "p", "policy": "program", "step_candidates": {"count": 2}}]
    assert "sample.teachers[0].step_candidates: only llm teachers" in load_error(write_config, data)
    data["sample"]["teachers"] = [{"name": "p", "policy": "program"}]
    data["verify"] = {"step_values": {"teacher": {"endpoint": "fak"}}}
    assert "verify.step_values.teacher.endpoint: unknown endpoint 'fak' (did you mean 'fake'?)" in load_error(write_config, data)
    data["verify"] = {}
    data["curate"]["pass_rate_bands"] = {"too_hard_max": 0.6, "too_easy_min": 0.5}
    assert "curate.pass_rate_bands: too_hard_max (0.6) must be below too_easy_min (0.5)" in load_error(write_config, data)


def test_sample_time_checks_enter_the_sample_stage_hash(write_config):
    data = small_config()
    data["endpoints"] = {"fake": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}
    data["sample"]["teachers"] = [{"name": "t", "policy": "llm", "endpoint": "fake", "samples_per_task": 4, "stop_after_passing": 1}]
    adaptive = configlib.load(write_config(data))
    changed = configlib.load(write_config(data), ["verify.min_score=0.5"])
    assert adaptive.stage_hash("sample") != changed.stage_hash("sample")
    del data["sample"]["teachers"][0]["stop_after_passing"]
    plain, plain_changed = configlib.load(write_config(data)), configlib.load(write_config(data), ["verify.min_score=0.5"])
    assert plain.stage_hash("sample") == plain_changed.stage_hash("sample")
