import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never reach a hub or W&B servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A freshly built tiny model (random weights), saved once per session."""
    from rl_reason.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", size="tiny", seed=0)


@pytest.fixture(scope="session")
def student_model_dir(tmp_path_factory) -> Path:
    from rl_reason.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("student") / "model", size="student", seed=0)
