"""Run health: extra metrics in TRL's logs and W&B (offline, read back), and the HTML report."""

import base64
import json
import re

import pytest

from rl_reason.report import reward_curves, write_report
from rl_reason.traces.schema import traces_location
from rl_reason.train.run import load_train_recipe, train

HEALTH = ["health/pass_rate", "health/format_rate", "health/length_p90", "health/truncated_rate",
          "health/zero_variance_groups", "traces/written"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir, write_recipe):
    tmp = tmp_path_factory.mktemp("report")
    recipe = write_recipe(tmp / "recipe.yaml", tiny_model_dir, tmp / "run", max_steps=4)
    return train(load_train_recipe(recipe))


def test_health_metrics_are_logged_every_step(run):
    logged = [h for h in run.log_history if "reward" in h]
    assert len(logged) == 4
    for h in logged:
        for key in HEALTH:
            assert key in h, key
        assert 0.0 <= h["health/pass_rate"] <= 1.0 and 0.0 <= h["health/zero_variance_groups"] <= 1.0
    assert [h["traces/written"] for h in logged] == [4.0, 8.0, 12.0, 16.0]


def test_step_time_is_split_into_generation_reward_scoring_update(run):
    logged = [h for h in run.log_history if "reward" in h]
    for h in logged:
        parts = [h["time/generation"], h["time/reward"], h["time/scoring"], h["time/update"]]
        assert all(p >= 0 for p in parts) and h["time/generation"] > 0 and h["time/update"] > 0
        # The parts are measured separately inside one step and add up to its wall time.
        assert sum(parts) == pytest.approx(h["time/step"], rel=0.02)
        assert h["reward_pool/checks_per_s"] > 0
    # 4 completions per step, each at most 12 tokens long, one step each.
    tokens = [h["throughput/tokens_per_s"] * h["time/step"] for h in logged]
    assert all(0 < t <= 4 * 12 + 1e-6 for t in tokens), tokens


def test_report_embeds_its_plots(run, tmp_path):
    path = write_report(run.output_dir, tmp_path / "r.html")
    page = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 4
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    assert "traces</td><td>16" in page


def test_report_cli_errors_on_a_non_run(tmp_path):
    from typer.testing import CliRunner

    from rl_reason.cli import app

    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "trainer_state.json not found" in result.stderr


def wandb_records(path):
    """Protobuf records of an offline .wandb file: a 7-byte header, then LevelDB-log framing
    (32 KiB blocks; each chunk is crc32c, 2-byte length, 1-byte type: full/first/middle/last)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk


def test_wandb_offline_history_has_the_health_metrics(tmp_path, tiny_model_dir, monkeypatch, write_recipe):
    """The real wandb library, offline; the run file is read back with wandb's own record reader."""
    import wandb
    from wandb.proto import wandb_internal_pb2

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", max_steps=4, report_to="wandb",
                          run_name="wb", dynamic_sampling={"enabled": True, "max_rounds": 1},
                          curriculum={"enabled": True})
    train(load_train_recipe(recipe, ["wandb.table_every=2", "wandb.table_rows=3"]))
    wandb.finish()
    wandb.teardown()  # shuts wandb-core down, so the run file is complete on disk
    run_info = json.loads((tmp_path / "run" / "wandb_run.json").read_text())
    assert run_info["mode"] == "offline" and run_info["project"] == "rl-reason"
    (run_file,) = list((tmp_path / "wandb").glob("offline-run-*/*.wandb"))
    keys = set()
    config = ""
    run_ids = set()
    table_steps = []
    for data in wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
            keys |= set(items)
            if "traces/nrows" in items:  # a table is logged as its parts
                table_steps.append(json.loads(items["train/global_step"]))
        if record.WhichOneof("record_type") == "config":
            config += str(record.config)
        if record.WhichOneof("record_type") == "run":
            run_ids.add(record.run.run_id)
    for key in ["train/reward", "train/health/pass_rate", "train/health/length_p90", "train/traces/written",
                "train/time/generation", "train/time/update", "train/throughput/tokens_per_s", "traces/nrows",
                "train/dynamic_sampling/extra_rounds", "train/dynamic_sampling/kept_groups",
                "train/dynamic_sampling/generated_groups", "train/efficiency/generated_tokens",
                "train/efficiency/trained_tokens",
                "train/curriculum/skipped", "train/pool/never_solved", "train/pool/mean_pass_rate"]:
        assert key in keys, sorted(keys)
    assert run_ids == {run_info["id"]}
    # table_every=2: the traces table at steps 2 and 4, against the step axis every metric is plotted on.
    assert table_steps == [2, 4]
    # The table is a file of the run: 3 rows with the reference answer column.
    table_files = list(run_file.parent.glob("files/media/table/traces_*.table.json"))
    assert len(table_files) == 2
    table = json.loads(table_files[0].read_text())
    assert "answer" in table["columns"] and len(table["data"]) == 3
    assert "recipe" in config  # the resolved recipe, our sections included


def test_train_ends_with_a_readable_summary(run):
    from rl_reason.cli.train import train_summary

    lines = train_summary(run).splitlines()
    assert lines[0] == f"done: 4 steps, model in {run.output_dir}"
    assert lines[1].startswith("reward ") and "(step 1) ->" in lines[1] and "pass rate" in lines[1]
    assert lines[2] == f"traces: 16 written by rank 0 in {run.traces_dir}"
    assert lines[3].startswith(f"next: rl-reason report {run.output_dir}")


def test_report_finds_traces_the_recipe_put_outside_the_run(tmp_path, tiny_model_dir, write_recipe):
    elsewhere = tmp_path / "scratch" / "traces"
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, tmp_path / "run", max_steps=1,
                          traces={"dir": str(elsewhere)})
    result = train(load_train_recipe(recipe))
    assert result.traces_dir == elsewhere and not (result.output_dir / "traces").exists()
    assert traces_location(result.output_dir) == elsewhere.resolve()
    page = write_report(result.output_dir, tmp_path / "r.html").read_text()
    assert "traces</td><td>4" in page and str(elsewhere.resolve()) in page


def test_traces_inside_the_run_are_recorded_relative_to_it(run):
    assert json.loads((run.output_dir / "traces_location.json").read_text()) == {"traces_dir": "traces"}
    assert traces_location(run.output_dir) == run.output_dir / "traces"


def test_reward_curves_come_from_the_logged_functions_and_their_roles():
    history = [{"step": 1, "reward": 0.5, "rewards/my_check/mean": 0.5, "rewards/think_format_reward/mean": 1.0,
                "rewards/brevity/mean": -0.1, "rewards/brevity/std": 0.0}]
    curves = reward_curves(history, {"my_check": "verifier", "brevity": "shaping"})
    assert curves == {"rewards/my_check/mean": "my_check (verifier)",
                      "rewards/think_format_reward/mean": "think_format_reward (format)",
                      "rewards/brevity/mean": "brevity (shaping)"}
