"""Commands that generate with a model: ``sample`` (rejection sampling), ``star`` and ``eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.cli.app import app, fail
from rl_reason.config import ConfigError


def parse_rewards(spec: str) -> list[tuple[str, float, dict]]:
    """``"math:1.0,format:0.1"`` → ``[("math", 1.0, {}), ("format", 0.1, {})]`` (weight defaults to 1)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        # A dotted-path reward ("pkg.mod:func") has a colon too: only a numeric tail is a weight.
        name, weight = part, 1.0
        head, sep, tail = part.rpartition(":")
        if sep:
            try:
                name, weight = head, float(tail)
            except ValueError:
                pass
        out.append((name, weight, {}))
    if not out:
        raise ConfigError("--rewards: give at least one reward, e.g. math:1.0,format:0.1")
    from rewards.registry import get_reward

    for name, _, _ in out:
        try:
            get_reward(name)
        except (KeyError, ImportError, AttributeError) as exc:
            raise ConfigError(f"--rewards: {exc.args[0] if exc.args else exc}") from None
    return out


@app.command()
def sample(
    model: Annotated[str, typer.Argument(help="teacher model directory (save_pretrained format) or Hub id; "
                                             "with --backend openai, the model name the endpoint serves")],
    output: Annotated[Path, typer.Option("--output", "-o", help="traces directory to append a shard to")],
    data: Annotated[str, typer.Option(
        help="'addition' (procedural training problems) or a JSONL/Parquet/dataset path")] = "addition",
    question_column: Annotated[str, typer.Option()] = "question",
    answer_column: Annotated[str, typer.Option()] = "answer",
    num_problems: Annotated[int, typer.Option(help="problems for procedural data")] = 200,
    limit: Annotated[Optional[int], typer.Option(help="only the first N rows of a file")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="samples per problem")] = 4,
    temperature: Annotated[float, typer.Option()] = 0.6,
    top_p: Annotated[float, typer.Option()] = 1.0,
    max_new_tokens: Annotated[int, typer.Option()] = 256,
    rewards: Annotated[str, typer.Option(help="NAME[:WEIGHT],... from the reward registry")] = "math:1.0,format:0.1",
    backend: Annotated[str, typer.Option(
        help="transformers | vllm | auto | openai (an OpenAI-compatible HTTP endpoint: needs --base-url)")
    ] = "transformers",
    base_url: Annotated[Optional[str], typer.Option(
        help="--backend openai: the endpoint, e.g. http://127.0.0.1:8000/v1 for `vllm serve MODEL`. It returns "
             "text, not token ids: traces record completion_ids as null and completion_tokens as the API's count "
             "with -n 1, else null")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(
        help="--backend openai: environment variable holding the API key (default OPENAI_API_KEY; "
             "when it is unset the key is 'EMPTY', which a local vLLM server accepts)")] = None,
    max_concurrency: Annotated[Optional[int], typer.Option(
        help="--backend openai: requests in flight at once, one per problem (default 8)")] = None,
    batch_size: Annotated[int, typer.Option(help="sequences per generate call (transformers)")] = 64,
    system_prompt: Annotated[Optional[str], typer.Option(help="default: the task's <think>/\\boxed prompt")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="run id recorded in the traces")] = None,
    seed: Annotated[int, typer.Option()] = 0,
):
    """Rejection sampling: N samples per problem from a teacher, scored by the rewards, written as traces.

    The teacher is a local model (transformers, vLLM) or a model served over HTTP (--backend openai)."""
    from rl_reason.data.load import load_problems
    from rl_reason.preflight import check_model_path
    from rl_reason.sampling.generation import make_generator, resolve_backend
    from rl_reason.sampling.openai_api import TeacherUnavailable
    from rl_reason.sampling.sample import sample_traces

    endpoint = {"base_url": base_url, "api_key_env": api_key_env, "max_concurrency": max_concurrency}
    generator = None
    try:
        if backend != "openai":
            check_model_path(model, "sample")
        specs = parse_rewards(rewards)
        resolve_backend(backend, base_url)
        if num_samples < 1:
            raise ConfigError("--num-samples must be at least 1")
        if backend == "openai":  # the preflight: an unreachable endpoint fails before anything is loaded
            generator = make_generator(model, backend, seed=seed, **endpoint)
            generator.check()
        elif any(v is not None for v in endpoint.values()):
            raise ConfigError("--base-url, --api-key-env and --max-concurrency are for --backend openai only")
        problems = load_problems(data, split="train", num_problems=num_problems, seed=seed,
                                 question_column=question_column, answer_column=answer_column, limit=limit,
                                 where="sample")
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    try:
        result = sample_traces(model, problems, output, reward_specs=specs, num_samples=num_samples,
                               temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, seed=seed, run_id=run_id, system_prompt=system_prompt,
                               backend=backend, generator=generator)
    except (ConfigError, TeacherUnavailable) as exc:  # a reward recorded with another role; the endpoint failed
        fail(str(exc))
    typer.echo(f"{result['correct']} of {result['samples']} samples correct, "
               f"{result['solved']} of {result['prompts']} problems solved -> {result['shard']}")


@app.command()
def star(
    model: Annotated[Path, typer.Argument(help="the model to start from (round 0)")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="directory for each round's traces, export and model")],
    rounds: Annotated[int, typer.Option(help="sample → export → distill → eval rounds")] = 2,
    base_model: Annotated[Optional[Path], typer.Option(
        help="model each round fine-tunes (default: MODEL, as in STaR)")] = None,
    data: Annotated[str, typer.Option(
        help="'addition' or a JSONL/Parquet/dataset path of training problems")] = "addition",
    eval_data: Annotated[Optional[str], typer.Option(
        help="held-out problems (default: the procedural held-out set)")] = None,
    num_problems: Annotated[int, typer.Option(help="training problems per round (procedural)")] = 200,
    num_eval: Annotated[int, typer.Option(help="held-out problems (procedural)")] = 100,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n")] = 4,
    temperature: Annotated[float, typer.Option()] = 1.0,
    max_new_tokens: Annotated[int, typer.Option()] = 64,
    max_steps: Annotated[int, typer.Option(help="SFT steps per round")] = 100,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="SFT per-device batch size")] = 16,
    select: Annotated[str, typer.Option(help="export selection per prompt")] = "all",
    seed: Annotated[int, typer.Option()] = 0,
):
    """STaR: iterate sample → export (correct only) → distill → eval, reporting held-out accuracy per round."""
    from rl_reason.export.pipeline import ExportError, ExportOptions
    from rl_reason.preflight import check_model_path
    from rl_reason.sampling.star import star as run_star
    from rl_reason.sampling.star import star_problems

    try:
        check_model_path(str(model), "star")
        if rounds < 1:
            raise ConfigError("--rounds must be at least 1")
        opts = ExportOptions(min_reward=None, correct_only=True, select=select)
        opts.check()
        train, heldout = star_problems(data, eval_data, num_problems=num_problems, num_eval=num_eval, seed=seed)
    except (ConfigError, ExportError) as exc:
        fail(str(exc))
    report = run_star(model, train, heldout, output, rounds=rounds, base_model=base_model, num_samples=num_samples,
                      temperature=temperature, max_new_tokens=max_new_tokens, export_options=opts, seed=seed,
                      sft={"max_steps": max_steps, "learning_rate": learning_rate,
                           "per_device_train_batch_size": batch_size},
                      log=typer.echo)
    typer.echo("round  exported  accuracy")
    for entry in report:
        typer.echo(f"{entry['round']:>5}  {entry.get('exported', ''):>8}  {entry['accuracy']:>8.1%}")


@app.command("eval")
def eval_(
    model: Annotated[Path, typer.Argument(help="a model directory (save_pretrained format)")],
    data: Annotated[str, typer.Option(
        help="'addition' (held-out procedural problems) or a JSONL/dataset path")] = "addition",
    question_column: Annotated[str, typer.Option()] = "question",
    answer_column: Annotated[str, typer.Option()] = "answer",
    num_problems: Annotated[int, typer.Option(help="held-out problems for procedural data")] = 200,
    limit: Annotated[Optional[int], typer.Option(help="evaluate only the first N rows of a file")] = None,
    k: Annotated[int, typer.Option(help="report pass@k (unbiased) from n samples when k > 1")] = 1,
    n: Annotated[Optional[int], typer.Option(help="samples per problem for pass@k (default k)")] = None,
    temperature: Annotated[float, typer.Option()] = 1.0,
    max_new_tokens: Annotated[int, typer.Option()] = 64,
    backend: Annotated[str, typer.Option(help="transformers | vllm | auto")] = "transformers",
    seed: Annotated[int, typer.Option(help="data seed: the same seed gives the same held-out set")] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the JSON report here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON report instead of the table")] = False,
):
    """pass@1 (greedy) and pass@k of a model on held-out problems, per source and answer type."""
    from rl_reason.data.load import load_problems
    from rl_reason.preflight import check_model_path
    from rl_reason.sampling.evaluate import evaluate
    from rl_reason.sampling.generation import resolve_backend

    try:
        check_model_path(str(model), "eval")
        if backend == "openai":  # an endpoint's teacher is for sampling; eval measures a local checkpoint
            raise ConfigError("eval: --backend openai is not supported here: use transformers, vllm or auto")
        resolve_backend(backend)
        if k < 1:
            raise ConfigError(f"eval: --k must be at least 1, got {k}")
        if n is not None and n < k:
            raise ConfigError(f"eval: --n {n} is smaller than --k {k}")
        problems = load_problems(data, split="heldout", num_problems=num_problems, seed=seed,
                                 question_column=question_column, answer_column=answer_column, limit=limit,
                                 where="eval")
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    report = evaluate(model, problems, k=k, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                      backend=backend)
    if output:
        report.write(output)
    typer.echo(report.to_json() if as_json else report.table())
