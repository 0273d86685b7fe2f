"""Build a tiny causal LM and its tokenizer from code: no download, saved with ``save_pretrained``.

Every stage then loads it by path, exactly like a Hugging Face model from the Hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from rl_reason.data.tasks import SYSTEM_PROMPT, make_problems

# ChatML with {% generation %} markers, so SFTTrainer's assistant_only_loss can mask the rest.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
# <|endoftext|> is in the vocabulary because AutoTokenizer resolves a qwen2 model to Qwen2Tokenizer,
# which would otherwise append it as a new unk token past the embedding matrix.
SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
# Not special: decoding with skip_special_tokens=True (as TRL does) must keep them.
REASONING_TOKENS = ["<think>", "</think>"]

SIZES = {
    # name: (hidden, layers, heads, kv_heads, intermediate)
    "tiny": (128, 4, 4, 2, 384),
    "student": (64, 2, 4, 2, 192),
}


def _corpus(n: int = 500, extra: Iterable[str] = ()) -> list[str]:
    texts = [SYSTEM_PROMPT, "user", "assistant", "system", "The answer is"]
    for row in make_problems(n, seed=12345, min_digits=1, max_digits=6):
        texts += [row["question"], row["solution"]]
    return texts + list(extra)


def build_tokenizer(vocab_size: int = 300, extra_corpus: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the task's own text, with every digit its own token.

    ``extra_corpus``: more text to learn merges from (another task's, e.g. code), so that text takes
    fewer tokens; give a larger ``vocab_size`` with it, or its merges crowd out the math task's."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(extra=extra_corpus or ()), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token=None,
        unk_token="<|endoftext|>",
        padding_side="left",
        model_max_length=512,
    )
    fast.add_tokens(REASONING_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer: PreTrainedTokenizerFast, size: str = "tiny", seed: int = 0) -> Qwen2ForCausalLM:
    import torch

    if size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {sorted(SIZES)}")
    hidden, layers, heads, kv_heads, inter = SIZES[size]
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=inter,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        use_cache=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def build_tiny(output_dir: str | Path, size: str = "tiny", seed: int = 0,
               extra_corpus: Iterable[str] | None = None, vocab_size: int = 300) -> Path:
    """Write a freshly initialised model and tokenizer to ``output_dir``; return the path.

    ``extra_corpus`` and ``vocab_size`` go to ``build_tokenizer`` (the defaults: the math task's tokenizer)."""
    output_dir = Path(output_dir)
    tokenizer = build_tokenizer(vocab_size, extra_corpus)
    model = build_model(tokenizer, size=size, seed=seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def recipe_model_path(name_or_path: str, output_dir: str | Path, size: str = "tiny", seed: int = 0) -> str:
    """The model a recipe's ``model`` section names, as a path or Hub id to load.

    ``tiny`` is the embedded model: built once into ``OUTPUT_DIR/base_model`` (kept across resumes),
    then loaded by path like any other.
    """
    if name_or_path != "tiny":
        return name_or_path
    path = Path(output_dir) / "base_model"
    if not (path / "config.json").exists():
        build_tiny(path, size=size, seed=seed)
    return str(path)
