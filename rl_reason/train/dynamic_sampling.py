"""DAPO dynamic sampling on TRL's rollout output: pure functions, no trainer state.

A step's rollout may take several generation rounds. Each round is TRL's own
``_generate_and_score_completions`` output (this rank's rows), gathered over ranks (``gather_round``). The
groups with signal, in order, fill the training batch (``plan``); ``assemble`` then hands every rank its
equal share of those rows, whichever rank generated them, so a group split across ranks, or a rank whose
groups were all dropped, still ends with exactly as many rows as the others.

Rows that fill a batch the round limit left short are flat groups with their completion mask zeroed: they
keep every rank's batch the same size, add nothing to the loss, and nothing to the token count TRL divides by.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


# TRL's output keys (GRPOTrainer._generate_and_score_completions), by how their rows are padded.
PROMPT_KEYS = ("prompt_ids", "prompt_mask")  # left-padded
TOKEN_KEYS = ("completion_ids", "completion_mask", "tool_mask", "old_per_token_logps", "ref_per_token_logps",
              "sampling_per_token_logps", "importance_sampling_ratio")  # right-padded, one value per token
ROW_KEYS = ("advantages",)
SUPPORTED = {*PROMPT_KEYS, *TOKEN_KEYS, *ROW_KEYS, "num_items_in_batch"}

TRAINED, ZERO_SPREAD, SURPLUS = None, "zero_spread", "surplus"  # a trace's ``dropped``


def unsupported_keys(output: dict) -> list[str]:
    return sorted(k for k in output if k not in SUPPORTED)


@dataclass
class Plan:
    picks: list[tuple[int, int]]  # (round, global group) in batch order
    masked: set[tuple[int, int]]  # picks that only fill the batch (flat, completion mask zeroed)
    dropped: dict[tuple[int, int], str]  # every generated group not trained, with why


def plan(flat_by_round: list[torch.Tensor], target: int) -> Plan:
    """The ``target`` groups to train on: groups with signal in generation order; when there are too few,
    the first flat ones fill the rest, masked."""
    signal = [(r, g) for r, flat in enumerate(flat_by_round) for g in range(len(flat)) if not flat[g]]
    flat = [(r, g) for r, flat in enumerate(flat_by_round) for g in range(len(flat)) if flat[g]]
    picks = signal[:target]
    masked = flat[:target - len(picks)]
    dropped = {key: SURPLUS for key in signal[target:]}
    dropped.update({key: ZERO_SPREAD for key in flat})  # masked fillers are not trained either
    return Plan(picks + masked, set(masked), dropped)


def gather_round(output: dict, accelerator, pad_token_id: int, sequence_level: set[str] = frozenset()) -> dict:
    """One round's output, every rank's rows, padded to one width across ranks."""
    width = output["completion_ids"].size(1)
    gathered = {}
    for key in (*PROMPT_KEYS, *TOKEN_KEYS, *ROW_KEYS):
        t = output.get(key)
        if t is None:
            continue
        if key in PROMPT_KEYS or (key in TOKEN_KEYS and key not in sequence_level and t.size(1) == width):
            pad = pad_token_id if key.endswith("_ids") else 0
            t = accelerator.pad_across_processes(t, dim=1, pad_index=pad, pad_first=key in PROMPT_KEYS)
        gathered[key] = accelerator.gather(t)
    return gathered


def _pad(t: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    extra = width - t.size(1)
    if extra <= 0:
        return t
    fill = torch.full((t.size(0), extra), value, dtype=t.dtype, device=t.device)
    return torch.cat([fill, t] if left else [t, fill], dim=1)


def assemble(rounds: list[dict], the_plan: Plan, group_size: int, rank: int, world: int, pad_token_id: int,
             sequence_level: set[str] = frozenset()) -> dict:
    """This rank's rows of the planned batch: the global batch's rows ``[rank*n, (rank+1)*n)``, as TRL lays
    groups out; masked fillers get a zero completion (and tool) mask."""
    rows, masked_rows, offset, offsets = [], [], 0, []
    for r in rounds:
        offsets.append(offset)
        offset += r["advantages"].size(0)
    for r, g in the_plan.picks:
        for j in range(group_size):
            rows.append(offsets[r] + g * group_size + j)
            masked_rows.append((r, g) in the_plan.masked)
    n = len(rows) // world
    mine = slice(rank * n, (rank + 1) * n)
    index = torch.tensor(rows[mine], dtype=torch.long)
    masked = torch.tensor(masked_rows[mine], dtype=torch.bool)

    out = {}
    for key in rounds[0]:
        parts = [r[key] for r in rounds]
        if parts[0].dim() == 2 and key not in sequence_level:
            width = max(p.size(1) for p in parts)
            value = pad_token_id if key.endswith("_ids") else 0
            parts = [_pad(p, width, value, left=key in PROMPT_KEYS) for p in parts]
        out[key] = torch.cat(parts).index_select(0, index.to(parts[0].device))
    for key in ("completion_mask", "tool_mask"):
        if key in out:
            out[key] = out[key].masked_fill(masked.to(out[key].device).unsqueeze(1), 0)
    return _trim(out, sequence_level)


def _trim(out: dict, sequence_level: set[str]) -> dict:
    """Drop padding columns no row of this rank uses (rounds and ranks padded to the widest)."""
    used = out["prompt_mask"].any(dim=0).nonzero()
    start = int(used[0]) if used.numel() else out["prompt_mask"].size(1)
    for key in PROMPT_KEYS:
        out[key] = out[key][:, start:]
    used = out["completion_mask"].any(dim=0).nonzero()
    end = max(int(used[-1]) + 1 if used.numel() else 1, 1)
    for key in TOKEN_KEYS:
        if key in out and key not in sequence_level:
            out[key] = out[key][:, :end]
    return out
