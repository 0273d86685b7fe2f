"""Export successful traces to a dataset, then distil a student on it with SFTTrainer."""

import json

from datasets import load_dataset, load_from_disk

from rl_reason.export.pipeline import export, select_records
from rl_reason.traces.writer import TraceWriter

PROMPT_A = [{"role": "system", "content": "sys"}, {"role": "user", "content": "1+2"}]
PROMPT_B = [{"role": "system", "content": "sys"}, {"role": "user", "content": "3+4"}]


def rec(prompt, completion, reward, correct=None, **kw):
    rewards = {"accuracy_reward": correct if correct is not None else (1.0 if (reward or 0) >= 1 else 0.0)}
    return {"prompt": prompt, "completion": completion, "reward": reward, "rewards": rewards, "mode": "train",
            "truncated": False, **kw}


def write_traces(tmp_path, records):
    with TraceWriter(tmp_path / "traces", rank=0, run_id="r") as w:
        for r in records:
            w.add(r)
    return tmp_path / "traces"


RECORDS = [
    rec(PROMPT_A, "<think>long long</think>\\boxed{3}", 1.1),
    rec(PROMPT_A, "<think>short</think>\\boxed{3}", 1.1),
    rec(PROMPT_A, "<think>short</think>\\boxed{3}", 1.1),  # exact duplicate
    rec(PROMPT_A, "<think>x</think>\\boxed{4}", 0.1),
    rec(PROMPT_B, "<think>y</think>\\boxed{7}", 1.0),
    rec(PROMPT_B, "<think>z</think>\\boxed{7}", 1.2, truncated=True),
    rec(PROMPT_B, "<think>e</think>\\boxed{7}", 1.0, mode="eval"),
    rec(PROMPT_B, "<think>n</think>\\boxed{7}", None),
]


def test_select_all_and_best():
    kept = select_records(RECORDS, min_reward=1.0, select="all")
    assert [r["completion"] for r in kept] == ["<think>long long</think>\\boxed{3}", "<think>short</think>\\boxed{3}",
                                               "<think>y</think>\\boxed{7}"]
    best = select_records(RECORDS, min_reward=1.0, select="best")
    assert [r["completion"] for r in best] == ["<think>short</think>\\boxed{3}", "<think>y</think>\\boxed{7}"]
    assert select_records(RECORDS, min_reward=0.0, select="all", include_eval=True)[-1]["mode"] == "eval"
    # correct_only trusts the verifier, not the weighted total
    shaped = [rec(PROMPT_A, "a", 2.0, correct=0.0), rec(PROMPT_A, "b", 1.0, correct=1.0)]
    assert [r["completion"] for r in select_records(shaped, min_reward=1.0, correct_only=True)] == ["b"]


def test_export_writes_messages_dataset_and_jsonl(tmp_path):
    stats = export(write_traces(tmp_path, RECORDS), tmp_path / "out", min_reward=1.0)
    assert stats.read == 8 and stats.kept == 3 and stats.prompts == 2
    assert stats.removed["duplicate"] == 1 and stats.removed["truncated"] == 1 and stats.removed["eval_mode"] == 1
    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    rows = load_dataset("json", data_files=str(tmp_path / "out" / "data" / "messages.jsonl"), split="train")
    assert len(ds) == len(rows) == 3
    messages = ds[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[-1]["content"].startswith("<think>")
    assert json.loads((tmp_path / "out" / "export_stats.json").read_text())["kept"] == 3


def test_distill_a_student_with_sft(tmp_path, student_model_dir):
    from rl_reason.distill import distill, load_distill_recipe

    records = [rec(PROMPT_A, "<think>\n2+1+0=3\n</think>\n\\boxed{3}", 1.0),
               rec(PROMPT_B, "<think>\n4+3+0=7\n</think>\n\\boxed{7}", 1.0)]
    export(write_traces(tmp_path, records), tmp_path / "export")
    recipe = load_distill_recipe(
        None,
        [f"output_dir={tmp_path / 'student'}", f"model.name_or_path={student_model_dir}",
         f"data.source={tmp_path / 'export'}", "max_steps=3", "per_device_train_batch_size=2", "learning_rate=1e-2",
         "report_to=none", "save_strategy=no", "logging_steps=1"],
    )
    assert recipe.args.assistant_only_loss
    out = distill(recipe)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == 64
