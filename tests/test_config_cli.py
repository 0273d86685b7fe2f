"""Recipes and the CLI: every user mistake is one line naming the key and the file, exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rl_reason.config import ConfigError
from rl_reason.train.run import load_train_recipe

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, data, name="recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def base(tmp_path, **extra):
    return {"output_dir": str(tmp_path / "out"), "max_steps": 1, "report_to": "none", **extra}


def test_every_shipped_recipe_validates(tmp_path):
    from rl_reason.distill import load_distill_recipe

    recipes = sorted((REPO / "configs").glob("*.yaml"))
    assert recipes, "configs/ has no recipes"
    for path in recipes:
        if "synthesize" in path.name:
            from rl_reason.config import load_synthesize_recipe
            from rl_reason.synthesize.pipeline import preflight

            recipe = load_synthesize_recipe(path, [f"output_dir={tmp_path / path.stem}"])
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(REPO)  # its seeds, taxonomy and benchmark paths are relative to the checkout
                preflight(recipe)  # every file it names exists and loads
            continue
        loader = load_distill_recipe if "distill" in path.name else load_train_recipe
        recipe = loader(path, [f"output_dir={tmp_path / path.stem}"])
        assert recipe.args.output_dir == str(tmp_path / path.stem)


def test_trl_keys_sections_and_weights(tmp_path):
    rewards = [{"name": "math", "weight": 2.0}, {"name": "format", "weight": 0.5}]
    path = write(tmp_path, base(tmp_path, learning_rate=3e-4, num_generations=4, rewards=rewards,
                                model={"size": "student"}))
    recipe = load_train_recipe(path)
    assert recipe.args.learning_rate == 3e-4 and recipe.args.num_generations == 4
    assert recipe.args.reward_weights == [2.0, 0.5]
    assert recipe.model.size == "student"


def test_overrides_reach_trl_keys_sections_and_rewards(tmp_path):
    path = write(tmp_path, base(tmp_path, rewards=[{"name": "math"}]))
    recipe = load_train_recipe(path, ["learning_rate=1e-5", "model.size=student", "data.num_train=10",
                                      "rewards.math.weight=0.25", "rewards.format.weight=0.1"])
    assert recipe.args.learning_rate == 1e-5
    assert recipe.model.size == "student" and recipe.data.num_train == 10
    assert [(r.name, r.weight) for r in recipe.rewards] == [("math", 0.25), ("format", 0.1)]


@pytest.mark.parametrize(
    "data, overrides, expected",
    [
        ({"lerning_rate": 1e-4}, [], "unknown key 'lerning_rate' (did you mean 'learning_rate'?)"),
        ({"model": {"nam_or_path": "x"}}, [], "model.nam_or_path"),
        ({"num_generations": "eight"}, [], "num_generations: expected"),
        ({}, ["learning_rate=fast"], "learning_rate: expected"),
        ({"rewards": [{"name": "maths"}]}, [], "unknown reward 'maths'"),
        ({"data": {"num_train": -1}}, [], "data.num_train"),
        ({}, ["learning_rate"], "expected KEY=VALUE"),
    ],
)
def test_mistakes_name_the_key_and_the_file(tmp_path, data, overrides, expected):
    path = write(tmp_path, base(tmp_path, **data))
    with pytest.raises(ConfigError) as info:
        load_train_recipe(path, overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(path) in message or "override" in message


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(*args):
    """The CLI in-process (a subprocess per case would pay TRL's import every time)."""
    from typer.testing import CliRunner

    from rl_reason.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return _Result(result.exit_code, result.stdout, result.stderr)


def run_cli_process(*args):
    return subprocess.run([sys.executable, "-m", "rl_reason.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_help_for_every_command():
    for command in ["", "synthesize", "train", "export", "distill", "eval", "demo", "launch"]:
        proc = run_cli(*([command] if command else []), "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Usage" in proc.stdout


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda t: ["train", t / "missing.yaml"], "config file not found"),
        (lambda t: ["train", write(t, base(t, lerning_rate=1))], "unknown key 'lerning_rate'"),
        (lambda t: ["train", write(t, base(t)), "max_steps=many"], "max_steps: expected"),
        (lambda t: ["train", write(t, base(t, model={"name_or_path": str(t / "no_model")}))], "does not exist"),
        (lambda t: ["train", write(t, base(t, data={"source": str(t / "rows.jsonl")}))], "neither a procedural task"),
        (lambda t: ["eval", t / "no_model"], "does not exist"),
        (lambda t: ["distill", write(t, base(t, data={"source": str(t / "nothing")}))], "not found"),
    ],
)
def test_cli_errors_exit_2_with_one_line(tmp_path, setup, expected):
    proc = run_cli(*setup(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for a bad recipe"


def test_missing_reward_column_fails_before_model_loads(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "1+1", "solution": "2"}\n')
    proc = run_cli("train", write(tmp_path, base(tmp_path, data={"source": str(rows)}, rewards=[{"name": "math"}])))
    assert proc.returncode == 2
    assert "need column(s) ['answer']" in proc.stderr
    assert not (tmp_path / "out").exists()


ROLE_REWARDS = """
def checker(completions, **kwargs):
    return [1.0 for _ in completions]
checker.role = "verfier"


def shaped(completions, **kwargs):
    return [0.0 for _ in completions]
shaped.role = "shaping"
"""


def test_a_reward_role_outside_the_registry_is_one_line_before_anything_loads(tmp_path, monkeypatch, tiny_model_dir):
    from rl_reason.train.run import preflight

    (tmp_path / "role_rewards.py").write_text(ROLE_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    # A typo in a function's own role attribute, then in the recipe's role key: refused, nothing written.
    proc = run_cli("train", write(tmp_path, base(tmp_path, rewards=[{"name": "role_rewards:checker"}])))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "unknown reward role 'verfier'" in errors[0], proc.stderr
    proc = run_cli("train", write(tmp_path, base(tmp_path, rewards=[{"name": "math", "role": "checker"}])))
    assert proc.returncode == 2 and "rewards[0]" in proc.stderr and "role" in proc.stderr, proc.stderr
    proc = run_cli("sample", tiny_model_dir, "--output", tmp_path / "traces", "--rewards", "role_rewards:checker")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "unknown reward role 'verfier'" in errors[0], proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "traces").exists()
    # Valid roles pass: the attribute, the recipe's key over it, and the registry's own.
    rewards = [{"name": "role_rewards:shaped"}, {"name": "role_rewards:checker", "role": "verifier"},
               {"name": "format"}]
    recipe = load_train_recipe(write(tmp_path, base(tmp_path, rewards=rewards)))
    _, _, roles, _ = preflight(recipe)
    assert roles == {"shaped": "shaping", "checker": "verifier", "think_format_reward": "format"}


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("train", write(tmp_path, base(tmp_path, output_dir=str(blocker / "out"))))
    assert proc.returncode == 2
    assert "output_dir" in proc.stderr and "not writable" in proc.stderr


def test_console_script_exit_code_in_a_real_process(tmp_path):
    proc = run_cli_process("train", write(tmp_path, base(tmp_path, lerning_rate=1)))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_use_vllm_without_vllm_or_gpu_fails_before_loading(tmp_path):
    # A stand-in for the GPU path: on this CPU machine vLLM cannot run, and the check must say so.
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("a CUDA machine: the vLLM path is exercised by the GPU smoke test")
    proc = run_cli("train", write(tmp_path, base(tmp_path, use_vllm=True, vllm_mode="server")))
    assert proc.returncode == 2
    assert "use_vllm: vLLM" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "launcher, recipe_keys, refused",
    [
        ("bf16", {}, True),  # fp32 recipe (the CPU default) under a bf16 launcher: DeepSpeed would stop
        ("fp16", {"bf16": True}, True),
        ("bf16", {"fp16": True, "bf16": False}, True),
        ("bf16", {"bf16": True}, False),
        ("no", {"bf16": True}, False),  # the recipe turns it on; accelerate's "no" is only a default
        ("no", {}, False),
        (None, {"bf16": True}, False),
    ],
)
def test_mixed_precision_comes_from_the_recipe(tmp_path, monkeypatch, launcher, recipe_keys, refused):
    if launcher is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", launcher)
    path = write(tmp_path, base(tmp_path, **recipe_keys))
    if refused:
        with pytest.raises(ConfigError, match=rf"launcher asks for {launcher} mixed precision.*the recipe decides"):
            load_train_recipe(path)
    else:
        load_train_recipe(path)
