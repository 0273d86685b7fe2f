"""``rl-reason synthesize``: rounds of Self-Instruct generation on a GLAN taxonomy, each problem
checked before it joins the pool.

A round: draw a taxonomy leaf and in-context examples (human seeds and earlier kept problems, in
the recipe's human share) per request; ask the teacher for a new problem; drop what is unparseable,
too short or long, matches a blocked pattern, overlaps a held-out benchmark (8-gram) or is a
near-copy of the pool (ROUGE-L); verify an answer (math: majority of K teacher solutions under an
Orca system instruction; code: the teacher's reference passes its tests and broken variants do
not); measure difficulty with a model's pass rate and keep a band; then the survivors join the
pool, one by one, so two near-copies from one round cannot both stay. Each round ends with the
collapse guard's measurements.

Everything is on disk as it happens (``OUTPUT_DIR``): every teacher answer in ``teacher_log.jsonl``,
every candidate and its fate in ``candidates.jsonl``, one line per finished round in
``rounds.jsonl``, and the dataset so far in ``dataset/``. A killed run started again continues
from its last finished round and asks the teacher only what it had not answered.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rl_reason.config import ConfigError, SynthesizeRecipe
from rl_reason.synthesize import diversity
from rl_reason.synthesize.prompts import DEFAULT_SYSTEM_INSTRUCTIONS, parse_problem, problem_request, \
    solution_messages
from rl_reason.synthesize.rouge import RougePool, max_scores, rouge_tokens
from rl_reason.synthesize.taxonomy import Leaf, TaxonomyError, coverage, load_taxonomy, pick_leaf

CANDIDATES, ROUNDS = "candidates.jsonl", "rounds.jsonl"
TEACHER_LOG, POLICY_LOG = "teacher_log.jsonl", "policy_log.jsonl"
RECIPE, STATS, DATASET = "recipe.yaml", "synthesize_stats.json", "dataset"
FILTERS = {
    "unparseable": "the teacher's reply holds no problem in the requested format",
    "too_short": "fewer words than filters.min_words",
    "too_long": "more words than filters.max_words",
    "blocked_pattern": "matches a filters.blocked_patterns regex (refusals, what a text model cannot do)",
    "decontaminated": "shares a word n-gram with a held-out benchmark (filters.decontaminate)",
    "near_copy": "ROUGE-L at or above filters.rouge_l_threshold with a problem already in the pool",
    "no_answer": "no teacher solution gave a final answer",
    "disagreement": "the majority answer's share is below verify.min_agreement",
    "reference_fails": "the teacher's reference solution fails its own tests",
    "weak_tests": "the tests pass a deliberately broken solution (or kill too few mutants)",
    "invalid_tests": "the tests cannot judge (no assert, no call of the function, an early exit, introspection)",
    "sandbox_error": "the sandbox could not judge it",
    "difficulty_band": "the pass rate is outside [difficulty.min_pass_rate, difficulty.max_pass_rate]",
}
POOL_SAMPLE = 500  # pool problems a round's kept problems are compared with for mean ROUGE-L


# --- preflight: everything checked before anything is written ----------------------------------


@dataclass
class Plan:
    recipe: SynthesizeRecipe
    seeds: list[dict]
    leaves: list[Leaf]
    instructions: list[str]
    patterns: list[re.Pattern]
    decontaminator: object | None


def _load_seeds(path: str, column: str, where: str) -> list[dict]:
    from rl_reason.data.load import UnknownFileType, load_file

    try:
        ds = load_file(path)
    except FileNotFoundError:
        raise ConfigError(f"{where}: synthesize.seeds: {path} not found") from None
    except UnknownFileType:
        raise ConfigError(f"{where}: synthesize.seeds: {path} is not a .jsonl, .json or .parquet file") from None
    if hasattr(ds, "keys") and not hasattr(ds, "column_names"):
        raise ConfigError(f"{where}: synthesize.seeds: {path} holds several splits; give one file")
    if column not in ds.column_names:
        raise ConfigError(f"{where}: synthesize.question_column: column {column!r} not in {path} "
                          f"(columns: {sorted(ds.column_names)})")
    rows = [dict(r) for r in ds if isinstance(r[column], str) and r[column].strip()]
    if not rows:
        raise ConfigError(f"{where}: synthesize.seeds: {path} has no non-empty {column!r} values")
    return rows


def preflight(recipe: SynthesizeRecipe) -> Plan:
    """Every input checked (``ConfigError``, one line) without writing anything."""
    s, where = recipe.synthesize, recipe.source
    seeds = _load_seeds(s.seeds, s.question_column, where)
    try:
        leaves = load_taxonomy(s.taxonomy) if s.taxonomy else []
    except TaxonomyError as exc:
        raise ConfigError(f"{where}: synthesize.{exc}") from None
    patterns = []
    for i, p in enumerate(s.filters.blocked_patterns):
        try:
            patterns.append(re.compile(p, re.IGNORECASE))
        except re.error as exc:
            raise ConfigError(f"{where}: synthesize.filters.blocked_patterns[{i}]: not a regex ({exc})") from None
    decontaminator = None
    if s.filters.decontaminate:
        from rl_reason.export.filters import Decontaminator, load_texts

        texts = []
        for path in s.filters.decontaminate:
            try:
                texts += load_texts(path)
            except (FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"{where}: synthesize.filters.decontaminate: {exc}") from None
        decontaminator = Decontaminator(texts, n=s.filters.ngram)
    if s.teacher.backend != "openai":
        _check_model(s.teacher.model, "synthesize.teacher.model", where)
    if s.difficulty.model not in (None, "policy"):
        _check_model(s.difficulty.model, "synthesize.difficulty.model", where)
    if s.difficulty.model == "policy" and recipe.model.name_or_path == "tiny":
        raise ConfigError(f"{where}: synthesize.difficulty.model: 'policy' names model.name_or_path, which is the "
                          "untrained 'tiny' model; give the policy's path")
    out = Path(recipe.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{where}: output_dir {out} exists and is not a directory")
    _check_same_recipe(out, recipe)
    return Plan(recipe, seeds, leaves, list(s.system_instructions or DEFAULT_SYSTEM_INSTRUCTIONS), patterns,
                decontaminator)


def _check_model(name: str, key: str, where: str) -> None:
    from rl_reason.data.load import _HUB_ID

    if not Path(name).exists() and not _HUB_ID.match(name):
        raise ConfigError(f"{where}: {key}: {name!r} is neither an existing path nor a Hub id")


# Changing anything else mid-run would mix two syntheses in one dataset. These may change: the
# target can grow, and the same teacher may be reached at another address or with other limits.
_RESUMABLE_KEYS = ("num_problems", "max_rounds")
_TEACHER_KEYS = ("backend", "model")


def _comparable(raw: dict) -> dict:
    section = dict(raw.get("synthesize") or {})
    for k in _RESUMABLE_KEYS:
        section.pop(k, None)
    teacher = section.get("teacher")
    if isinstance(teacher, dict):
        section["teacher"] = {k: v for k, v in teacher.items() if k in _TEACHER_KEYS}
    return {"seed": raw.get("seed", 0), "synthesize": section}


def _check_same_recipe(out: Path, recipe: SynthesizeRecipe) -> None:
    saved = out / RECIPE
    if not saved.exists():
        return
    before = _comparable(yaml.safe_load(saved.read_text()) or {})
    if before != _comparable(recipe.raw):
        raise ConfigError(f"{recipe.source}: output_dir {out} holds a synthesis from a different recipe "
                          f"({saved}); continue it with the same recipe or choose a new output_dir")


# --- state: what finished rounds left on disk ---------------------------------------------------


@dataclass
class State:
    round: int = 0
    kept: list[dict] = field(default_factory=list)
    removed: Counter = field(default_factory=Counter)
    leaf_counts: Counter = field(default_factory=Counter)
    human_share: float = 0.75
    rounds: list[dict] = field(default_factory=list)
    verified_pass_rates: list[float] = field(default_factory=list)
    agreements: list[float] = field(default_factory=list)
    candidates: int = 0
    stop_reason: str | None = None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].split(b"\n") if line.strip()]


def load_state(out: Path, plan: Plan, pool: RougePool) -> State:
    """The state after the last finished round; candidates of an unfinished round are cut away."""
    state = State(human_share=plan.recipe.synthesize.human_share)
    rounds = _read_jsonl(out / ROUNDS)
    done = {r["round"] for r in rounds}
    candidates = [c for c in _read_jsonl(out / CANDIDATES) if c["round"] in done]
    if (out / CANDIDATES).exists():
        _rewrite(out / CANDIDATES, candidates)
    for c in candidates:
        _count(state, c)
        if c["status"] == "kept":
            pool.add(c["question"])
    state.rounds = rounds
    if rounds:
        last = rounds[-1]
        state.round = last["round"] + 1
        state.human_share = last["human_share_next"]
        state.stop_reason = last.get("stop_reason")
    return state


def _count(state: State, c: dict) -> None:
    state.candidates += 1
    if c["status"] == "kept":
        state.kept.append(c)
        if c.get("leaf"):
            state.leaf_counts[c["leaf"]] += 1
    else:
        state.removed[c["status"]] += 1
    if c.get("agreement") is not None:
        state.agreements.append(c["agreement"])
    if c.get("pass_rate") is not None:
        state.verified_pass_rates.append(c["pass_rate"])


def _rewrite(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def _append(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


# --- one round --------------------------------------------------------------------------------


def _examples(rng: random.Random, plan: Plan, state: State) -> tuple[list[str], int]:
    s = plan.recipe.synthesize
    column = s.question_column
    machine = [c["question"] for c in state.kept]
    n_machine = min(s.num_examples - round(s.num_examples * state.human_share), len(machine))
    n_human = min(s.num_examples - n_machine, len(plan.seeds))
    examples = [r[column] for r in rng.sample(plan.seeds, n_human)] + rng.sample(machine, n_machine)
    rng.shuffle(examples)
    return examples, n_human


def run_round(r: int, plan: Plan, state: State, pool: RougePool, teacher, policy) -> tuple[list[dict], dict]:
    s = plan.recipe.synthesize
    rng = random.Random(f"{plan.recipe.seed}/{r}")
    started = time.time()
    cands, messages = [], []
    for j in range(s.requests_per_round):
        leaf = pick_leaf(plan.leaves, state.leaf_counts, rng) if plan.leaves else None
        examples, n_human = _examples(rng, plan, state)
        instruction = rng.choice(plan.instructions)
        msgs = problem_request(examples, leaf, s.task)
        if s.task == "code":  # the code teacher writes its reference in this reply: the instruction goes here
            msgs[0]["content"] += " " + instruction
        messages.append(msgs)
        cands.append({"id": f"synth-r{r}-{j}", "round": r, "leaf": leaf.name if leaf else None,
                      "system_instruction": instruction, "examples_human": n_human,
                      "examples_generated": len(examples) - n_human})
    replies = teacher.generate("problem", messages, n=1, temperature=s.temperature, top_p=s.top_p,
                               max_tokens=s.max_completion_length, seed=plan.recipe.seed * 100_003 + r)
    alive = []
    for c, reply in zip(cands, replies):
        c["reply"] = reply[0]
        status = _screen(c, plan, pool)
        if status:
            c["status"] = status
        else:
            alive.append(c)
    alive = _verify(alive, plan, teacher, r)
    alive = _difficulty(alive, plan, policy, r)
    prior = list(pool.texts)
    sample = rng.sample(prior, min(POOL_SAMPLE, len(prior)))
    kept = []
    for c in alive:
        if pool.offer(c["question"]):
            c["status"] = "kept"
            kept.append(c)
        else:
            c["status"] = "near_copy"
    for c, score in zip(kept, max_scores([c["question"] for c in kept], sample) if sample else []):
        c["rouge_l"] = score
    return cands, _round_metrics(r, cands, kept, plan, state, started)


def _screen(c: dict, plan: Plan, pool: RougePool) -> str | None:
    """The first cheap filter ``c`` fails, or None; sets ``question`` (and the code fields)."""
    s = plan.recipe.synthesize
    if s.task == "code":
        from rl_reason.synthesize.code_check import parse_code_problem

        parsed = parse_code_problem(c["reply"])
        if isinstance(parsed, str):  # tests that exit early, never assert, redefine the function ...
            c["reason"] = parsed
            return "invalid_tests" if parsed.startswith("tests") else "unparseable"
        c.update(question=parsed.question, entry_point=parsed.entry_point, reference=parsed.reference,
                 test_code=parsed.tests)
    else:
        question = parse_problem(c["reply"])
        if question is None:
            return "unparseable"
        c["question"] = question
    words = len(rouge_tokens(c["question"]))
    if words < s.filters.min_words:
        return "too_short"
    if words > s.filters.max_words:
        return "too_long"
    for p in plan.patterns:
        if p.search(c["question"]):
            c["reason"] = p.pattern
            return "blocked_pattern"
    if plan.decontaminator is not None and plan.decontaminator.contaminated(c["question"]):
        return "decontaminated"
    near = pool.near_copy(c["question"])
    if near is not None:
        c["rouge_l"], c["near_copy_of"] = near[0], pool.texts[near[1]]
        return "near_copy"
    return None


def _verify(alive: list[dict], plan: Plan, teacher, r: int) -> list[dict]:
    s = plan.recipe.synthesize
    if not alive:
        return alive
    if s.task == "code":
        from rl_reason.synthesize.code_check import CodeProblem, verify_code_problem

        out = []
        for c in alive:
            verdict = verify_code_problem(
                CodeProblem(c["question"], c["entry_point"], c["reference"], c["test_code"]),
                min_kill_rate=s.verify.min_kill_rate)
            c["verification"] = {k: v for k, v in vars(verdict).items() if k != "kept"}
            if verdict.kept:
                c["tests"] = {"type": "assert", "code": c["test_code"], "entry_point": c["entry_point"]}
                c["solution"] = f"```python\n{c['reference'].strip()}\n```"
                out.append(c)
            else:
                c["status"] = _code_status(verdict.reason)
        return out
    from rl_reason.synthesize.verify import majority_votes

    v = s.verify
    prompts = [solution_messages(c["question"], c["system_instruction"]) for c in alive]
    solutions = teacher.generate("solution", prompts, n=v.num_generations, temperature=v.temperature, top_p=v.top_p,
                                 max_tokens=v.max_completion_length, seed=plan.recipe.seed * 100_003 + r)
    out = []
    for c, texts, vote in zip(alive, solutions, majority_votes(solutions)):
        c.update(agreement=vote.agreement, votes=vote.votes, num_generations=vote.total)
        if vote.answer is None:
            c["status"] = "no_answer"
        elif vote.agreement < v.min_agreement:
            c["status"], c["answer"] = "disagreement", vote.answer
        else:
            c["answer"], c["solution"] = vote.answer, texts[vote.agreeing[0]]
            out.append(c)
    return out


def _code_status(reason: str) -> str:
    reason = reason.lower()
    if reason.startswith("reference"):
        return "reference_fails"
    if reason.startswith("invalid"):
        return "invalid_tests"
    if reason.startswith("sandbox"):
        return "sandbox_error"
    return "weak_tests"


def _difficulty(alive: list[dict], plan: Plan, policy, r: int) -> list[dict]:
    d = plan.recipe.synthesize.difficulty
    if policy is None or not alive:
        return alive
    from rl_reason.data.tasks import prompt_messages, resolve_system_prompt
    from rl_reason.synthesize.verify import pass_rates

    system = resolve_system_prompt(d.system_prompt)
    prompts = [prompt_messages(c["question"], system) for c in alive]
    samples = policy.generate("difficulty", prompts, n=d.num_generations, temperature=d.temperature,
                              max_tokens=d.max_completion_length, seed=plan.recipe.seed * 100_003 + r)
    task = plan.recipe.synthesize.task
    refs = [c["tests"] if task == "code" else c["answer"] for c in alive]
    out = []
    for c, rate in zip(alive, pass_rates(task, prompts, samples, refs)):
        c["pass_rate"] = rate
        if d.min_pass_rate <= rate <= d.max_pass_rate:
            out.append(c)
        else:
            c["status"] = "difficulty_band"
    return out


def _round_metrics(r: int, cands: list[dict], kept: list[dict], plan: Plan, state: State, started: float) -> dict:
    questions = [c["question"] for c in kept]
    counts = state.leaf_counts + Counter(c["leaf"] for c in kept if c.get("leaf"))
    scores = [c["rouge_l"] for c in kept if c.get("rouge_l") is not None]
    return {
        "round": r,
        "requests": len(cands),
        "kept": len(kept),
        "removed": dict(Counter(c["status"] for c in cands if c["status"] != "kept")),
        "distinct_1": diversity.distinct_n(questions, 1),
        "distinct_2": diversity.distinct_n(questions, 2),
        "mean_rouge_l": sum(scores) / len(scores) if scores else 0.0,
        "answer_mix": diversity.answer_mix([c.get("answer") for c in kept])
        if plan.recipe.synthesize.task == "math" else {"function": 1.0} if kept else {},
        "taxonomy_coverage": (sum(1 for leaf in plan.leaves if counts[leaf.name]) / len(plan.leaves))
        if plan.leaves else None,
        "human_share": state.human_share,
        "examples_human_share": _share([c["examples_human"] for c in cands],
                                       [c["examples_human"] + c["examples_generated"] for c in cands]),
        "seconds": round(time.time() - started, 3),
    }


def _share(parts: list[int], totals: list[int]) -> float:
    return sum(parts) / sum(totals) if sum(totals) else 0.0


def _guard(metrics: dict, plan: Plan) -> tuple[float, str | None]:
    """The next round's human share and a stop reason (the collapse guard)."""
    g = plan.recipe.synthesize.collapse
    share = metrics["human_share"]
    why = diversity.collapsed(metrics, g.min_distinct_2, g.max_mean_rouge_l)
    metrics["collapse"] = why
    if why is None or g.action == "warn":
        return share, None
    if g.action == "raise_human_share" and share < 1.0:
        return min(1.0, share + g.human_share_step), None
    return share, f"collapse guard at round {metrics['round']}: {why}"


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Result:
    output_dir: Path
    dataset: Path
    kept: int
    rounds: int
    removed: dict
    stop_reason: str | None
    teacher_requests: int


def make_teachers(plan: Plan, out: Path):
    from rl_reason.synthesize.teacher import Teacher

    s, recipe = plan.recipe.synthesize, plan.recipe
    t = s.teacher
    endpoint = {}
    if t.backend == "openai":
        endpoint = dict(base_url=t.base_url, api_key_env=t.api_key_env, max_concurrency=t.max_concurrency,
                        max_retries=t.max_retries, timeout=t.timeout)
    teacher = Teacher("teacher", t.model, out / TEACHER_LOG, backend=t.backend, seed=recipe.seed,
                      batch_size=t.batch_size, **endpoint)
    policy = None
    if s.difficulty.model is not None:
        model = recipe.model.name_or_path if s.difficulty.model == "policy" else s.difficulty.model
        policy = Teacher("policy", model, out / POLICY_LOG, backend="auto", seed=recipe.seed, batch_size=t.batch_size)
    return teacher, policy


def synthesize(recipe: SynthesizeRecipe, progress: bool = True) -> Result:
    from tqdm.auto import tqdm

    from rl_reason.synthesize.card import write_dataset

    plan = preflight(recipe)
    s = recipe.synthesize
    out = Path(recipe.output_dir)
    teacher, policy = make_teachers(plan, out)
    teacher.check()  # an unreachable endpoint ends here, before the output directory exists
    pool = RougePool(s.filters.rouge_l_threshold)
    for row in plan.seeds:
        pool.add(row[s.question_column])
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RECIPE).exists():
        (out / RECIPE).write_text(yaml.safe_dump(recipe.raw, sort_keys=False))
    state = load_state(out, plan, pool)
    bar = tqdm(total=s.num_problems, initial=min(len(state.kept), s.num_problems), desc="synthesize",
               unit="problem", disable=None if progress else True)
    while len(state.kept) < s.num_problems and state.round < s.max_rounds and state.stop_reason is None:
        r = state.round
        cands, metrics = run_round(r, plan, state, pool, teacher, policy)
        for c in cands:
            _count(state, c)
        metrics["human_share_next"], metrics["stop_reason"] = _guard(metrics, plan)
        _append(out / CANDIDATES, cands)
        _append(out / ROUNDS, [metrics])  # the round is finished once this line is on disk
        state.rounds.append(metrics)
        state.round, state.human_share, state.stop_reason = r + 1, metrics["human_share_next"], metrics["stop_reason"]
        bar.update(min(len(state.kept), s.num_problems) - bar.n)
        bar.set_postfix(round=r, kept=metrics["kept"], distinct2=f"{metrics['distinct_2']:.2f}")
        write_dataset(out, plan, state)
    bar.close()
    if state.stop_reason is None and len(state.kept) < s.num_problems:
        state.stop_reason = f"max_rounds ({s.max_rounds}) reached with {len(state.kept)} of {s.num_problems} problems"
    dataset = write_dataset(out, plan, state, final=True)
    return Result(out, dataset, len(state.kept), state.round, dict(state.removed), state.stop_reason,
                  teacher.requests_sent)


def leaf_coverage(plan: Plan, state: State) -> list[dict]:
    return coverage(plan.leaves, state.leaf_counts) if plan.leaves else []
