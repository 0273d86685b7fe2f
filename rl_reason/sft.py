"""Supervised fine-tuning on chat ``messages`` with TRL's SFTTrainer, loss on assistant tokens only.

Used twice: the warm start of the policy on reference solutions, and student distillation
on exported traces.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer


def run_sft(model_path: str | Path, train_dataset: Dataset, args: SFTConfig, callbacks=None) -> Path:
    """Train ``model_path`` on ``train_dataset`` (a ``messages`` column) and save to ``args.output_dir``."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    return Path(args.output_dir)
