"""``rl-reason export --wandb``: the export as a W&B artifact, offline, read back from the run files."""

import json

import pytest
from typer.testing import CliRunner

from rl_reason.cli import app
from test_export_output import make_run
from test_report import wandb_records

SOURCE = {"id": "train123", "project": "rl-reason-test", "entity": None, "group": "grp-1", "mode": "offline"}


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Offline, every W&B directory under tmp_path (artifact staging copies included)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var, sub in [("WANDB_DATA_DIR", "wb-data"), ("WANDB_CONFIG_DIR", "wb-config"), ("WANDB_CACHE_DIR", "wb-cache")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    # rl_reason.train.run.setup_wandb setdefaults these for the whole process; a run of its own must not inherit them.
    for var in ["WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_RUN_ID",
                "WANDB_RESUME", "WANDB_JOB_TYPE"]:
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    import wandb

    assert wandb.run is None  # nothing left running for later tests


@pytest.fixture
def run_dir(tmp_path):
    """A training run's OUTPUT_DIR: traces/ (24 traces) and wandb_run.json."""
    out = tmp_path / "run"
    make_run(out / "traces")
    (out / "traces" / "run.json").write_text(json.dumps({"run_id": "run-A", "git_sha": "abc123"}))
    (out / "wandb_run.json").write_text(json.dumps(SOURCE))
    return out


def export(*args):
    result = CliRunner().invoke(app, ["export", *map(str, args)])
    return result


def read_run(run_dir):
    """The records of one offline run directory, by kind."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    out = {}
    for data in wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        out.setdefault(kind, []).append(getattr(record, kind))
    return out


def config_of(records):
    (run,) = records["run"]
    updates = list(run.config.update) + [u for c in records.get("config", []) for u in c.update]
    return {u.key: json.loads(u.value_json) for u in updates if u.key != "_wandb"}


def check_artifact(records, output, name, source_run_id):
    (artifact,) = records["artifact"]
    assert artifact.type == "dataset" and artifact.name == name and list(artifact.aliases) == ["latest"]
    meta = json.loads(artifact.metadata)
    stats = json.loads((output / "export_stats.json").read_text())
    assert meta["source_run_id"] == source_run_id
    assert meta["read"] == stats["read"] == 24 and meta["kept"] == stats["kept"] and meta["removed"] == stats["removed"]
    assert meta["trace_run_ids"] == {"run-A": 24} and meta["trace_run_metadata"]["git_sha"] == "abc123"
    assert meta["export_args"]["select"] == "shortest" and meta["export_args"]["format"] == "parquet"
    paths = {c.path for c in artifact.manifest.contents}
    assert {"README.md", "export_stats.json", "data/messages.parquet", "data/problems.parquet",
            "dataset/dataset_info.json"} <= paths
    return meta


def test_lineage_logs_the_dataset_onto_the_training_run(tmp_path, run_dir, wandb_env):
    """Default: the training run (id from wandb_run.json) is resumed and logs the artifact itself."""
    import wandb

    # The training run's own offline directory, where train.py puts it (WANDB_DIR defaults to OUTPUT_DIR).
    train = wandb.init(id=SOURCE["id"], project=SOURCE["project"], group=SOURCE["group"], dir=str(run_dir),
                       mode="offline", job_type="train", config={"lr": 0.1},
                       settings=wandb.Settings(silent=True, console="off"))
    train.finish()
    wandb.teardown()

    result = export(run_dir / "traces", "-o", tmp_path / "out", "--select", "shortest", "--format", "parquet",
                    "--wandb")
    assert result.exit_code == 0, result.output
    runs = sorted((run_dir / "wandb").glob("offline-run-*-train123"))
    assert len(runs) == 2  # the training run, then its resumed offline segment
    assert f"wandb sync {runs[0]} {runs[1]}" in result.stdout  # uploaded in that order
    logged = "artifact out-train123:latest (dataset) logged by training run rl-reason-test/train123 (offline)"
    assert logged in result.stdout

    records = read_run(runs[1])
    (run,) = records["run"]
    assert run.run_id == "train123" and run.resume and run.project == "rl-reason-test" and run.run_group == "grp-1"
    assert run.job_type == ""  # the training run's job type is left as it was
    assert config_of(records) == {}  # and so is its config: the export is described by the artifact
    check_artifact(records, tmp_path / "out", "out-train123", "train123")
    assert "artifact" not in read_run(runs[0])


def test_export_run_beside_the_training_run(tmp_path, run_dir, wandb_env):
    """--no-wandb-lineage: a job_type=export run in the training run's project and group; one shard as input."""
    wandb_env.setenv("WANDB_DIR", str(tmp_path))
    result = export(run_dir / "traces" / "rank-00000.jsonl", "-o", tmp_path / "out", "--select", "shortest",
                    "--format", "parquet", "--no-min-reward", "--wandb", "--no-wandb-lineage")
    assert result.exit_code == 0, result.output
    (run_path,) = (tmp_path / "wandb").glob("offline-run-*")
    records = read_run(run_path)
    (run,) = records["run"]
    assert run.job_type == "export" and run.run_id != "train123" and not run.resume
    assert run.project == "rl-reason-test" and run.run_group == "grp-1"
    config = config_of(records)
    assert config["source_run_id"] == "train123" and config["export_args"]["select"] == "shortest"
    (artifact,) = records["artifact"]
    assert artifact.run_id == run.run_id
    meta = json.loads(artifact.metadata)
    assert meta["source_run_id"] == "train123" and meta["read"] == 12
    assert meta["source_traces"].endswith("rank-00000.jsonl")
    assert f"logged by export run rl-reason-test/{run.run_id} (offline)" in result.stdout


def test_no_training_run_file_and_a_second_export_in_the_same_process(tmp_path, wandb_env):
    """Traces without wandb_run.json: an export run in --wandb-project. A second export with another
    WANDB_DIR lands there (wandb's per-process settings are reset), not in the first one's directory."""
    traces = make_run(tmp_path / "traces")
    for i in (1, 2):
        wandb_env.setenv("WANDB_DIR", str(tmp_path / f"wb{i}"))
        result = export(traces, "-o", tmp_path / "out", "--select", "shortest", "--format", "parquet", "--wandb",
                        "--wandb-project", "proj-x", "--no-save-to-disk")
        assert result.exit_code == 0, result.output
        (run_path,) = (tmp_path / f"wb{i}" / "wandb").glob("offline-run-*")
        records = read_run(run_path)
        (run,) = records["run"]
        assert run.project == "proj-x" and run.job_type == "export" and run.run_group == ""
        (artifact,) = records["artifact"]
        assert artifact.name == "out" and json.loads(artifact.metadata)["source_run_id"] is None
        assert not any(c.path.startswith("dataset/") for c in artifact.manifest.contents)  # --no-save-to-disk
    assert not (tmp_path / "out" / "dataset").exists()


def test_wandb_failure_keeps_the_export(tmp_path, run_dir, wandb_env):
    """W&B runs after the files are in place: its failure is one error line, exit 2, the export intact."""
    import wandb
    from wandb.errors import CommError

    def unreachable(**kwargs):
        raise CommError("Failed to get resume status for run train123: context deadline exceeded")

    wandb_env.setattr(wandb, "init", unreachable)
    result = export(run_dir / "traces", "-o", tmp_path / "out", "--wandb")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: W&B logging failed (CommError: Failed to get resume status")
    assert result.stderr.count("\n") == 1
    assert f"the export is intact in {tmp_path / 'out'}" in result.stderr
    assert "kept 13 from 6 prompts" in result.stdout
    assert (tmp_path / "out" / "README.md").exists() and (tmp_path / "out" / "data" / "messages.jsonl").exists()


def test_unreadable_training_run_file_is_a_wandb_error(tmp_path, run_dir, wandb_env):
    (run_dir / "wandb_run.json").write_text("{not json")
    result = export(run_dir / "traces", "-o", tmp_path / "out", "--wandb")
    assert result.exit_code == 2 and "wandb_run.json is unreadable" in result.stderr
    assert (tmp_path / "out" / "export_stats.json").exists()
