"""Rollout health: what TRL does not log, as pure functions of one generation batch.

The trainer calls ``rollout_health`` after every rollout, traces on or off, and appends the values
to TRL's per-step metrics, so they reach the console, W&B and trainer_state.json with the rest.
Every tensor here covers the whole batch, gathered over ranks.
"""

from __future__ import annotations

import torch


def nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Standard deviation ignoring NaNs, Bessel-corrected, NaN with fewer than two values: TRL's
    ``trl.trainer.utils.nanstd``, so group statistics here equal the ones TRL computes."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dim, keepdim=True)
    correction = torch.where(count > 1, count / (count - 1), torch.full_like(variance, float("nan")))
    std = torch.sqrt(variance * correction)
    return std.squeeze(dim) if dim is not None else std.reshape(())


def weighted_totals(rewards: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each completion's weighted reward, as TRL sums and logs it: NaN (a function that could not
    judge) counts as 0, and a completion no function judged is NaN."""
    totals = (rewards * weights.to(rewards.device).unsqueeze(0)).nansum(dim=1)
    totals[torch.isnan(rewards).all(dim=1)] = torch.nan
    return totals


def all_passed(rewards: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """Per completion: 1.0 when every function in ``columns`` that judged it gave >= 1.0, 0.0 when
    one gave less, NaN when none of them judged it (the export's correctness rule)."""
    values = rewards[:, columns]
    judged = ~torch.isnan(values)
    failed = (judged & (values < 1.0)).any(dim=1)
    return torch.where(judged.any(dim=1), (~failed).float(), torch.nan)


def zero_variance_groups(totals: torch.Tensor, group_size: int) -> float:
    """Fraction of groups with no learning signal: equal totals, or fewer than two judged.

    Under ``scale_rewards`` group or none this equals TRL's ``frac_reward_zero_std`` (same std, same
    ``isclose``), except for groups with fewer than two judged completions: TRL's std is NaN there, so
    it does not count them, while their advantages are all 0, which is what this counts. Under
    ``scale_rewards=batch`` TRL's number is about the whole batch's std, a different question."""
    return flat_groups(totals, group_size).float().mean().item()


def flat_groups(totals: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per group: True when its totals have no spread (or fewer than two were judged), so every advantage
    in it is 0. Dynamic sampling drops these groups (``rl_reason.train.dynamic_sampling``)."""
    if group_size < 2:
        return torch.ones(totals.numel() // max(group_size, 1), dtype=torch.bool)
    std = nanstd(totals.view(-1, group_size).float().cpu(), dim=1)
    return torch.isnan(std) | torch.isclose(std, torch.zeros_like(std))


def rollout_health(rewards: torch.Tensor, totals: torch.Tensor, group_size: int, names: list[str],
                   roles: dict[str, str], lengths: torch.Tensor, truncated: torch.Tensor) -> dict[str, float]:
    """Pass rate (role verifier), format rate (role format), how often each of those could not judge,
    completion length p90, truncation rate and groups without learning signal."""
    out = {}
    for role, metric in (("verifier", "health/pass_rate"), ("format", "health/format_rate")):
        columns = [i for i, name in enumerate(names) if roles.get(name) == role]
        if not columns:
            continue
        passed = all_passed(rewards, columns)
        judged = passed[~torch.isnan(passed)]
        if judged.numel():
            out[metric] = judged.mean().item()
        for i in columns:
            out[f"health/{names[i]}_unjudged"] = torch.isnan(rewards[:, i]).float().mean().item()
    out["health/length_p90"] = torch.quantile(lengths.float(), 0.9).item()
    out["health/truncated_rate"] = truncated.float().mean().item()
    out["health/zero_variance_groups"] = zero_variance_groups(totals, group_size)
    return out
