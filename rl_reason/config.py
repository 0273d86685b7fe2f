"""Recipes: YAML files whose top-level keys are TRL argument names, plus the project's sections.

A recipe for ``rl-reason train`` is a flat mapping of ``GRPOConfig`` fields (``learning_rate``,
``num_generations``, ``report_to`` ...) next to sections of our own::

    model:   {name_or_path: tiny, size: tiny}
    data:    {source: addition, num_train: 2000, ...}
    rewards: [{name: math, weight: 1.0}, {name: format, weight: 0.2}]   # + kwargs, role
    traces:  {enabled: true}
    wandb:   {project: rl-reason, table_every: 50}
    dynamic_sampling: {enabled: false, max_rounds: 4}
    curriculum:       {enabled: false, window: 2, floor: 0.1}

``rl-reason distill`` takes the same shape with ``SFTConfig`` fields. Every key is checked
before anything heavy starts; a mistake ends in one line that names the key and the file.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator


class ConfigError(ValueError):
    """A user mistake in a recipe or an override: printed as one line, exit code 2."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    # "tiny" builds the embedded model (no download) into OUTPUT_DIR/base_model.
    name_or_path: str = "tiny"
    size: Literal["tiny", "student"] = "tiny"
    seed: int = 0


class DataSection(_Section):
    # "addition" is the procedural task; anything else is a JSONL file or a saved HF dataset dir.
    source: str = "addition"
    split: str | None = None
    question_column: str = "question"
    answer_column: str = "answer"
    system_prompt: str | None = None  # None: the task's default prompt
    num_train: int = Field(2000, ge=1)
    num_eval: int = Field(200, ge=0)
    min_digits: int = Field(1, ge=1)
    max_digits: int = Field(3, ge=1)
    seed: int = 0
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _digits_in_order(self):
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) is larger than max_digits ({self.max_digits})")
        return self


class RewardSpec(_Section):
    name: str
    weight: float = 1.0
    kwargs: dict[str, Any] = Field(default_factory=dict)
    role: Literal["verifier", "format", "shaping"] | None = None  # default: rewards.registry.role_of


class TracesSection(_Section):
    enabled: bool = True
    dir: str | None = None  # default: OUTPUT_DIR/traces


class WandbSection(_Section):
    project: str = "rl-reason"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    # A table of sampled traces (prompt, completion, rewards, reference answer) every N steps; 0: never.
    table_every: int = Field(50, ge=0)
    table_rows: int = Field(16, ge=1)


class DynamicSamplingSection(_Section):
    """DAPO's dynamic sampling: groups whose total reward has no spread teach nothing, so they are dropped
    from the training batch and more prompts are generated until it is full of groups with signal."""

    enabled: bool = False
    # Extra generation rounds per step at most; past them the step trains on the groups with signal it has.
    max_rounds: int = Field(4, ge=0)


class CurriculumSection(_Section):
    """Skip prompts the policy solved every time, or never, in their last ``window`` appearances."""

    enabled: bool = False
    window: int = Field(2, ge=1)
    # The chance a prompt that would be skipped is taken anyway, so none is starved forever.
    floor: float = Field(0.1, ge=0.0, le=1.0)


SECTIONS: dict[str, type[BaseModel]] = {
    "model": ModelSection,
    "data": DataSection,
    "traces": TracesSection,
    "wandb": WandbSection,
    "dynamic_sampling": DynamicSamplingSection,
    "curriculum": CurriculumSection,
}


@dataclasses.dataclass
class Recipe:
    """A validated recipe: TRL arguments plus our sections."""

    args: Any  # GRPOConfig or SFTConfig
    model: ModelSection
    data: DataSection
    rewards: list[RewardSpec]
    traces: TracesSection
    wandb: WandbSection
    dynamic_sampling: DynamicSamplingSection
    curriculum: CurriculumSection
    source: str  # where it came from, for messages
    raw: dict  # the resolved mapping, logged to W&B


def _parse_scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads yes/no/on/off as booleans; on the command line they are strings
    # (save_strategy=no), and only true/false are booleans.
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        return text
    return value


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any, str]]:
    """``key=value`` strings into (path, value, original); ``model.size=student`` reaches a section."""
    parsed = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE (for example learning_rate=1e-5)")
        parsed.append((key.strip().split("."), _parse_scalar(value), item))
    return parsed


def _apply_override(raw: dict, path: list[str], value: Any, where: str) -> None:
    if path[0] == "rewards" and len(path) == 3:
        # rewards.<name>.<field>=value addresses a reward by its registry name.
        rewards = raw.setdefault("rewards", [])
        match = [r for r in rewards if isinstance(r, dict) and r.get("name") == path[1]]
        if not match:
            rewards.append({"name": path[1]})
            match = rewards[-1:]
        match[0][path[2]] = value
        return
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {'.'.join(path)} does not name a section")
    node[path[-1]] = value


def _did_you_mean(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(err: ValidationError, prefix: str, model: type[BaseModel]) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p != "__root__")
    where = f"{prefix}.{loc}" if loc else prefix
    if first["type"] == "extra_forbidden":
        # a nested section's key is suggested from that section's own fields
        fields = model.model_fields if "." not in loc else {}
        return f"unknown key '{where}'{_did_you_mean(loc, fields)}"
    if first["type"] == "missing":
        return f"{where} is required"
    if first["type"] == "value_error":  # our own validators: their message already says what was wrong
        return f"{where}: {first['msg'].removeprefix('Value error, ')}"
    return f"{where}: {first['msg']}, got {first.get('input')!r}"


def _check_type(key: str, value: Any, annotation: Any, source: str) -> Any:
    """The validated value (an override "2e-4" is a string until here), or a one-line error."""
    adapter = TypeAdapter(annotation)
    candidates = [value]
    if value is False:
        candidates.append("no")  # `save_strategy: no` in YAML 1.1 is the boolean False
    for candidate in candidates:
        try:
            return adapter.validate_python(candidate)
        except ValidationError:
            continue
    expected = str(annotation).replace("typing.", "")
    raise ConfigError(f"{source}: {key}: expected {expected}, got {value!r}")


def load_recipe(path: str | Path | None, overrides: list[str] = (), args_class=None,
                defaults: dict | None = None) -> Recipe:
    """Read, merge overrides into, and validate a recipe. Raises ``ConfigError`` with one line."""
    if args_class is None:
        from trl import GRPOConfig as args_class
    raw: dict = dict(defaults or {})
    source = "<defaults>"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" line {line + 1}" if line is not None else ""
            raise ConfigError(f"{source}:{where} not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
        raw.update(loaded)
    for key_path, value, original in parse_overrides(list(overrides)):
        _apply_override(raw, key_path, value, f"override {original!r}")
    return validate(raw, source, args_class)


def validate(raw: dict, source: str, args_class) -> Recipe:
    fields = {f.name: f for f in dataclasses.fields(args_class) if f.init}
    sections: dict[str, Any] = {}
    for name, model in SECTIONS.items():
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping")
        try:
            sections[name] = model.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_describe(exc, name, model)}") from None

    rewards_raw = raw.get("rewards", [{"name": "math", "weight": 1.0}])
    if not isinstance(rewards_raw, list):
        raise ConfigError(f"{source}: rewards must be a list of {{name, weight}} entries")
    rewards = []
    for i, spec in enumerate(rewards_raw):
        if isinstance(spec, str):
            spec = {"name": spec}
        try:
            rewards.append(RewardSpec.model_validate(spec))
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_describe(exc, f'rewards[{i}]', RewardSpec)}") from None
    from rewards.registry import REWARDS

    for spec in rewards:
        if spec.name not in REWARDS and ":" not in spec.name:
            raise ConfigError(
                f"{source}: rewards: unknown reward {spec.name!r}{_did_you_mean(spec.name, REWARDS)}; "
                f"choose from {sorted(REWARDS)} or give 'module:function'"
            )

    args_kwargs = {}
    for key, value in raw.items():
        if key in SECTIONS or key == "rewards":
            continue
        if key not in fields:
            hint = _did_you_mean(key, list(fields) + list(SECTIONS) + ["rewards"])
            raise ConfigError(f"{source}: unknown key {key!r}{hint}")
        args_kwargs[key] = _check_type(key, value, fields[key].type, source)
    if "reward_weights" in args_kwargs:
        raise ConfigError(f"{source}: reward_weights: set each weight in the rewards section instead")
    if rewards and "reward_weights" in fields:
        args_kwargs["reward_weights"] = [r.weight for r in rewards]
    _check_sections(sections, args_kwargs, fields, source)
    if not args_kwargs.get("output_dir"):
        raise ConfigError(f"{source}: output_dir is required (a recipe key or output_dir=DIR on the command line)")
    try:
        args = args_class(**args_kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {str(exc).splitlines()[0]}") from None
    return Recipe(args=args, rewards=rewards, source=source, raw=raw, **sections)


def _check_sections(sections: dict, args_kwargs: dict, fields: dict, source: str) -> None:
    """Our sections against the trainer's arguments, before the arguments are built (TRL's own checks
    would otherwise speak first, in its words)."""
    if sections["dynamic_sampling"].enabled and "num_generations" in fields:
        n = args_kwargs.get("num_generations", fields["num_generations"].default)
        if n is not None and n < 2:
            raise ConfigError(f"{source}: num_generations: dynamic_sampling needs at least 2 completions per "
                              f"prompt to see a reward spread, got {n}")


# --- rl-reason synthesize ------------------------------------------------------------------------


class TeacherSection(_Section):
    # transformers / vllm: a local model (path or Hub id); openai: the served model's name.
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    model: str
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1 (a `vllm serve` or a hosted API)
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never the recipe
    max_concurrency: int = Field(8, ge=1)
    max_retries: int = Field(3, ge=0)
    timeout: float = Field(120.0, gt=0)
    batch_size: int = Field(64, ge=1)  # transformers: sequences per generate call

    @model_validator(mode="after")
    def _url_for_openai(self):
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (for example http://localhost:8000/v1)")
        return self


class SynthFilters(_Section):
    rouge_l_threshold: float = Field(0.7, gt=0.0, le=1.0)  # Self-Instruct's near-copy threshold
    min_words: int = Field(3, ge=1)  # words as ROUGE-L tokenizes them (letters and digits)
    max_words: int = Field(150, ge=1)
    # Self-Instruct's keyword filter (what a text model cannot do) and refusals, case-insensitive regexes.
    blocked_patterns: list[str] = Field(default_factory=lambda: [
        r"\bimage\b", r"\bimages\b", r"\bgraph\b", r"\bpicture\b", r"\bdiagram\b", r"\bfigure\b",
        r"\bas an ai\b", r"\bi (?:cannot|can't|am unable to)\b", r"\bi'm sorry\b", r"\bsorry, but\b",
    ])
    decontaminate: list[str] = Field(default_factory=list)  # held-out benchmark files (8-gram overlap)
    ngram: int = Field(8, ge=1)


class SynthVerify(_Section):
    num_generations: int = Field(4, ge=1)  # math: K teacher solutions per problem
    min_agreement: float = Field(0.6, ge=0.0, le=1.0)  # the majority answer's share to keep a problem
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_completion_length: int = Field(512, ge=1)
    min_kill_rate: float = Field(0.5, ge=0.0, le=1.0)  # code: share of mutants the tests must fail


class SynthDifficulty(_Section):
    # None: off. "policy": the recipe's model section. Anything else: a model path or Hub id.
    model: str | None = None
    num_generations: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    max_completion_length: int = Field(512, ge=1)
    min_pass_rate: float = Field(0.1, ge=0.0, le=1.0)
    max_pass_rate: float = Field(0.9, ge=0.0, le=1.0)
    system_prompt: str | None = None  # the prompt training will use (None: the task's default)

    @model_validator(mode="after")
    def _band_in_order(self):
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(f"min_pass_rate ({self.min_pass_rate}) is above max_pass_rate ({self.max_pass_rate})")
        return self


class SynthCollapse(_Section):
    min_distinct_2: float = Field(0.0, ge=0.0, le=1.0)  # floor on a round's distinct-bigram ratio; 0: off
    max_mean_rouge_l: float = Field(1.0, ge=0.0, le=1.0)  # ceiling on mean ROUGE-L to the pool; 1: off
    action: Literal["stop", "raise_human_share", "warn"] = "stop"
    human_share_step: float = Field(0.25, gt=0.0, le=1.0)


class SynthesizeSection(_Section):
    task: Literal["math", "code"] = "math"
    num_problems: int = Field(100, ge=1)  # kept problems to reach
    max_rounds: int = Field(100, ge=1)
    requests_per_round: int = Field(32, ge=1)
    teacher: TeacherSection
    seeds: str  # JSONL (or any file load_file reads) of human-written problems
    question_column: str = "question"
    answer_column: str = "answer"
    taxonomy: str | None = None  # GLAN YAML: discipline → subject → topics with weights
    num_examples: int = Field(8, ge=1)  # in-context examples per request (Self-Instruct: 8)
    human_share: float = Field(0.75, ge=0.0, le=1.0)  # of those, drawn from the seeds (Self-Instruct: 6 of 8)
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_completion_length: int = Field(256, ge=1)
    system_instructions: list[str] = Field(default_factory=list, min_length=0)  # Orca; empty: the defaults
    filters: SynthFilters = Field(default_factory=SynthFilters)
    verify: SynthVerify = Field(default_factory=SynthVerify)
    difficulty: SynthDifficulty = Field(default_factory=SynthDifficulty)
    collapse: SynthCollapse = Field(default_factory=SynthCollapse)


@dataclasses.dataclass
class SynthesizeRecipe:
    output_dir: str
    seed: int
    model: ModelSection  # the policy, for difficulty.model: policy
    synthesize: SynthesizeSection
    source: str
    raw: dict


def load_synthesize_recipe(path: str | Path, overrides: list[str] = ()) -> SynthesizeRecipe:
    """A ``rl-reason synthesize`` recipe: ``output_dir``, ``seed``, ``model`` and the ``synthesize`` section."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{source}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    for key_path, value, original in parse_overrides(list(overrides)):
        _apply_override(raw, key_path, value, f"override {original!r}")
    known = {"output_dir", "seed", "model", "synthesize"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{source}: unknown key {key!r}{_did_you_mean(key, known)}")
    if not raw.get("output_dir"):
        raise ConfigError(f"{source}: output_dir is required (a recipe key or output_dir=DIR on the command line)")
    if "synthesize" not in raw:
        raise ConfigError(f"{source}: the synthesize section is missing")
    sections = {}
    for name, model in (("model", ModelSection), ("synthesize", SynthesizeSection)):
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping")
        try:
            sections[name] = model.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_describe(exc, name, model)}") from None
    seed = _check_type("seed", raw.get("seed", 0), int, source)
    return SynthesizeRecipe(output_dir=str(raw["output_dir"]), seed=seed, source=source, raw=raw, **sections)

