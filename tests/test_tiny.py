"""The embedded model and task: built from code, saved, loaded back by path like a Hub model."""


import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rl_reason.data.tasks import make_problems, prompt_messages, reference_solution


def test_reference_solution_is_correct_column_addition():
    for a, b in [(0, 0), (5, 7), (99, 1), (473, 958), (1000, 9999)]:
        sol = reference_solution(a, b)
        assert sol.startswith("<think>\n") and "</think>" in sol
        assert sol.endswith("\\boxed{" + str(a + b) + "}")
        lines = sol.split("</think>")[0].splitlines()[1:]
        assert len(lines) == max(len(str(a)), len(str(b)))


def test_problems_are_distinct_and_respect_exclusions():
    held = make_problems(50, seed=7)
    train = make_problems(500, seed=1, exclude={p["question"] for p in held})
    assert len({p["question"] for p in train}) == 500
    assert not {p["question"] for p in train} & {p["question"] for p in held}
    for p in train[:50]:
        a, b = map(int, p["question"].split("+"))
        assert int(p["answer"]) == a + b


def test_round_trip_by_path(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    # <think> must survive decoding with skip_special_tokens=True, as TRL decodes completions.
    text = "<think>\n4+7+0=11\n</think>\n\\boxed{11}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert all(tok.decode([i]) in "0123456789" for i in tok("9876543210", add_special_tokens=False)["input_ids"])
    # The chat template marks assistant tokens, which SFTTrainer's assistant_only_loss needs.
    messages = prompt_messages("12+30") + [{"role": "assistant", "content": "<think>\nx\n</think>\n\\boxed{42}"}]
    out = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked).endswith("\\boxed{42}<|im_end|>")
    with torch.no_grad():
        logits = model(torch.tensor([out["input_ids"]])).logits
    assert logits.shape[-1] == len(tok)


def test_generation_config_stops_at_eos(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token_id != tok.eos_token_id
