"""rewards.registry: what each reward is (role, columns, TRL name), user rewards, and rewards that pickle."""

from __future__ import annotations

import inspect
import pickle

import pytest
from trl.trainer.utils import get_callable_name

from rewards import registry
from rewards.registry import REWARDS, ROLES, get_reward, names_with_role, required_columns, role_of, roles_of

GOOD = "<think>\n1+2=3\n</think>\n\\boxed{3}"
SQUARE = "```python\nn = int(input())\nprint(n * n)\n```"
ECHO_FOUR = "```python\ninput()\nprint(4)\n```"  # right on the first case only
# the least each registered reward needs to be built
REQUIRED_KWARGS = {"length": {"max_completion_length": 20, "cache": 5}}


def _unwrapped(func):
    while hasattr(func, "func"):
        func = func.func
    return func


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_builtin_entry_matches_its_callable(name):
    info = REWARDS[name]
    func = get_reward(name, **REQUIRED_KWARGS.get(name, {}))
    assert get_callable_name(func) == info.func_name == registry.func_name(func)
    assert info.role in ROLES and role_of(name) == info.role
    assert required_columns(name) == info.columns
    params = inspect.signature(_unwrapped(func)).parameters
    assert all(c in params for c in info.columns), f"{name} declares columns its function does not read"


def test_user_reward_role_and_columns(tmp_path, monkeypatch):
    (tmp_path / "user_rewards_for_registry.py").write_text(
        "def plain(completions, **kw):\n    return [0.0] * len(completions)\n\n"
        "def styled(completions, **kw):\n    return [0.0] * len(completions)\n"
        "styled.role = 'format'\n\n"
        "def typo(completions, **kw):\n    return [0.0] * len(completions)\n"
        "typo.role = 'verfier'\n\n"
        "def graded(completions, rubric=None, **kw):\n    return [0.0] * len(completions)\n"
        "graded.columns = ('rubric', 'answer')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = "user_rewards_for_registry"
    plain, styled, typo = (get_reward(f"{mod}:{f}") for f in ("plain", "styled", "typo"))
    assert role_of(f"{mod}:plain", func=plain) == "verifier"  # a user's reward is most often the task's checker
    assert role_of(f"{mod}:plain", "shaping", func=plain) == "shaping"
    assert role_of(f"{mod}:styled", func=styled) == "format"
    assert role_of(f"{mod}:styled", "verifier", func=styled) == "verifier"  # the recipe wins
    assert role_of("math", "shaping") == "shaping"
    with pytest.raises(ValueError, match="bogus"):
        role_of(f"{mod}:plain", "bogus", func=plain)
    with pytest.raises(ValueError, match="verfier"):
        role_of(f"{mod}:typo", func=typo)
    assert required_columns(f"{mod}:graded") == ("rubric", "answer")
    assert required_columns(f"{mod}:plain") == ()


def test_roles_of_recorded_and_old_traces():
    names = ["accuracy_reward", "think_format_reward", "soft_overlong_punishment", "my_checker"]
    recorded = {"my_checker": "verifier", "think_format_reward": "shaping"}
    assert roles_of(names, recorded) == {
        "accuracy_reward": "verifier", "think_format_reward": "shaping",
        "soft_overlong_punishment": "shaping", "my_checker": "verifier",
    }
    assert names_with_role(names, "verifier", recorded) == ["accuracy_reward", "my_checker"]
    # traces from before roles were recorded: only built-in names have a role, the rest only shapes
    assert roles_of(names + ["code_reward"]) == {
        "accuracy_reward": "verifier", "think_format_reward": "format",
        "soft_overlong_punishment": "shaping", "my_checker": "shaping", "code_reward": "verifier",
    }
    assert names_with_role(names, "verifier") == ["accuracy_reward"]


STDIO = {"type": "stdio", "cases": [{"input": "2", "output": "4"}, {"input": "3", "output": "9"}]}
# (name, kwargs, batch, expected scores): the kwargs change a score, so an option lost in the round trip shows
PICKLE_CASES = [
    ("math", {}, {"completions": [GOOD, r"\boxed{50}", "no answer"], "answer": ["3", r"50\%", "3"]}, [1.0, 1.0, 0.0]),
    ("math", {"timeout": 5.0, "percent": "strict"},
     {"completions": [GOOD, r"\boxed{50}", "no answer"], "answer": ["3", r"50\%", "3"]}, [1.0, 0.0, 0.0]),
    ("code", {}, {"completions": [SQUARE, ECHO_FOUR], "tests": [STDIO, STDIO]}, [1.0, 0.5]),
    ("code", {"all_or_nothing": True}, {"completions": [SQUARE, ECHO_FOUR], "tests": [STDIO, STDIO]}, [1.0, 0.0]),
    ("format", {}, {"completions": [GOOD, "reasoning</think>\\boxed{3}"]}, [1.0, 0.0]),
    ("format", {"prefilled_think": True}, {"completions": [GOOD, "reasoning</think>\\boxed{3}"]}, [0.0, 1.0]),
    ("length", {"max_completion_length": 20, "cache": 5},
     {"completions": ["a", "b", "c"], "completion_ids": [[1] * 10, [1] * 18, [1] * 25]}, [0.0, -0.6, -1.0]),
]


@pytest.mark.parametrize("name, kwargs, batch, expected", PICKLE_CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1]) or 'defaults'}" for c in PICKLE_CASES])
def test_rewards_pickle_and_score_the_same(name, kwargs, batch, expected):
    func = get_reward(name, **kwargs)
    restored = pickle.loads(pickle.dumps(func))
    assert get_callable_name(restored) == REWARDS[name].func_name
    # TRL's call: every column and its own extras as keywords
    call = dict(prompts=["p"] * len(batch["completions"]), trainer_state=None, log_metric=lambda *a: None, **batch)
    assert func(**call) == pytest.approx(expected)
    assert restored(**call) == pytest.approx(expected)
