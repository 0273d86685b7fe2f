"""What the teacher is asked: a new problem like the examples (Self-Instruct) on a taxonomy leaf
(GLAN), and solutions under a system instruction (Orca).

The wording is fixed here, in one place, so a teacher fine-tuned on it (the tests train one) and a
hosted model read the same requests.
"""

from __future__ import annotations

import re

from rl_reason.data.tasks import SYSTEM_PROMPT
from rl_reason.synthesize.taxonomy import Leaf

TASKS = ("math", "code")
PROBLEM_SYSTEM = "You write new problems for a course. Each new problem must differ from the examples."
CODE_FORMAT = (
    "Reply in this format:\nProblem: <the statement>\nSolution:\n```python\n<a function>\n```\n"
    "Tests:\n```python\n<assert lines that call the function>\n```"
)
# Orca's point: the same teacher explains differently under different system instructions.
DEFAULT_SYSTEM_INSTRUCTIONS = [
    "Solve the problem step by step.",
    "Explain your reasoning as you would to a student, then answer.",
    "Think carefully and check your work before answering.",
]


def problem_request(examples: list[str], leaf: Leaf | None, task: str = "math") -> list[dict]:
    """Chat messages asking for one new problem like ``examples``, on ``leaf`` when there is one."""
    lines = [f"Example {i}: {text.strip()}" for i, text in enumerate(examples, 1)]
    ask = "Write one new problem like these examples"
    if leaf is not None:
        ask += f", on the topic: {leaf.topic} ({leaf.discipline} / {leaf.subject})"
    ask += "."
    ask += "\n" + (CODE_FORMAT if task == "code" else "Reply with the problem only.")
    return [{"role": "system", "content": PROBLEM_SYSTEM}, {"role": "user", "content": "\n".join(lines + [ask])}]


_LABEL = re.compile(r"^\s*(?:new\s+)?(?:problem|question|example\s*\d*)\s*[:.]\s*", re.IGNORECASE)
_SOLUTION_LEAK = re.compile(r"\n\s*(?:solution|answer|tests?)\s*:", re.IGNORECASE)


def parse_problem(text: str) -> str | None:
    """The problem statement in a math teacher's reply: its label and any leaked solution cut off."""
    text = _LABEL.sub("", text.strip(), count=1)
    leak = _SOLUTION_LEAK.search("\n" + text)
    if leak:
        text = ("\n" + text)[: leak.start()]
    text = text.strip()
    return text or None


def solution_messages(question: str, instruction: str) -> list[dict]:
    """A solution request: the Orca instruction, then the answer format every reward reads."""
    system = f"{instruction.strip()} {SYSTEM_PROMPT}".strip()
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]
