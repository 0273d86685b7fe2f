import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never reach a hub or W&B servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ... and leave nothing in the user's home: wandb stages offline tables and artifacts there.
_WANDB_HOME = Path(tempfile.mkdtemp(prefix="rl-reason-tests-wandb-"))
for _var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
    os.environ.setdefault(_var, str(_WANDB_HOME / _var.lower()))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A freshly built tiny model (random weights), saved once per session."""
    from rl_reason.data.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", size="tiny", seed=0)


@pytest.fixture(scope="session")
def student_model_dir(tmp_path_factory) -> Path:
    from rl_reason.data.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("student") / "model", size="student", seed=0)


def _write_recipe(path: Path, model_dir: Path, output_dir: Path, **overrides) -> Path:
    import yaml

    recipe = {
        "output_dir": str(output_dir),
        "model": {"name_or_path": str(model_dir)},
        "data": {"num_train": 64, "min_digits": 1, "max_digits": 2},
        "rewards": [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.5}],
        "num_generations": 4,
        "per_device_train_batch_size": 4,
        "max_completion_length": 12,
        "max_steps": 3,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "save_strategy": "no",
        "report_to": "none",
        **overrides,
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="session")
def write_recipe():
    """The recipe builder: ``write_recipe(path, model_dir, output_dir, **overrides)`` writes a small GRPO
    recipe on the tiny model (3 steps of 4 prompts' groups, about a second) with ``overrides`` on top."""
    return _write_recipe


@pytest.fixture(scope="session")
def synth_teacher_dir(tmp_path_factory) -> Path:
    """A small real teacher for the ``rl-reason synthesize`` tests, built once per session: the tiny model
    fine-tuned with TRL's SFTTrainer on problem requests and solutions of the addition task (about 1,200
    steps; it and the synthesize e2e test took the suite from about 12.5 to 26.5 minutes on 2 idle cores).
    tests/synth_teacher.py has its corpus and why; tests/test_synth_teacher.py its quality."""
    from tests.synth_teacher import build_teacher

    return build_teacher(tmp_path_factory.mktemp("synth_teacher") / "model")
