"""Format and length rewards, the registry, and TRL's reward signature."""

import pytest

from rewards.format import is_well_formed
from rewards.length import make_soft_overlong_punishment, overlong_penalty
from rewards.registry import REWARDS, get_reward

GOOD = "<think>\n1+2+0=3\n</think>\n\\boxed{3}"


@pytest.mark.parametrize(
    "text, ok",
    [
        (GOOD, True),
        ("  " + GOOD, True),
        ("<think>\nreason\n</think>\n<answer>3</answer>", True),
        ("<think></think>\\boxed{3}", False),  # empty reasoning
        ("\\boxed{3}", False),
        ("<think>a</think><think>b</think>\\boxed{3}", False),
        ("<think>a</think>\\boxed{3} \\boxed{4}", False),  # two final answers
        ("<think>a\\boxed{3}", False),  # never closed
        ("<think>a</think>", False),  # no answer
    ],
)
def test_think_format(text, ok):
    assert is_well_formed(text) is ok


def test_prefilled_think_templates():
    assert not is_well_formed("reasoning</think>\\boxed{3}")
    assert is_well_formed("reasoning</think>\\boxed{3}", prefilled_think=True)


def test_soft_overlong_punishment():
    assert overlong_penalty(10, 20, 5) == 0.0
    assert overlong_penalty(15, 20, 5) == 0.0
    assert overlong_penalty(18, 20, 5) == pytest.approx(-0.6)
    assert overlong_penalty(25, 20, 5) == -1.0
    fn = make_soft_overlong_punishment(20, 5)
    assert fn(prompts=[0, 0], completions=["a", "b"], completion_ids=[[1] * 10, [1] * 20]) == [0.0, -1.0]
    with pytest.raises(ValueError):
        make_soft_overlong_punishment(10, 0)


def test_registry_builds_trl_signature_callables():
    for name in ["math", "format", "length"]:
        kwargs = {"max_completion_length": 8, "cache": 2} if name == "length" else {}
        fn = get_reward(name, **kwargs)
        out = fn(
            prompts=[[{"role": "user", "content": "1+2"}]] * 2,
            completions=[[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "no"}]],
            completion_ids=[[1, 2], [3]],
            answer=["3", "3"],
            trainer_state=None,
            log_extra=lambda *a: None,
            log_metric=lambda *a: None,
        )
        assert len(out) == 2 and all(v is None or isinstance(v, float) for v in out)
    assert get_reward("math")(prompts=[None], completions=[GOOD], answer=["3"]) == [1.0]
    assert get_reward("math")(prompts=[None], completions=[GOOD], answer=["4"]) == [0.0]
    assert get_reward("rewards.format:think_format_reward")(completions=[GOOD]) == [1.0]
    with pytest.raises(KeyError):
        get_reward("nope")
    assert set(REWARDS) >= {"math", "code", "format", "length"}


def test_rewards_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, rewards.format, rewards.length, rewards.registry, rewards.math; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
