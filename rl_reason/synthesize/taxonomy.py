"""GLAN-style taxonomies: discipline → subject → topics (or skills), each leaf with a weight.

The YAML is nested mappings, read as the path to each leaf::

    Mathematics:                      # discipline
      Arithmetic:                     # subject
        multi-digit addition: 2       # topic: weight
        subtraction with borrowing: 1
      Fractions:                      # or a list: weight 1 each, or {topic, weight}
        - adding fractions
        - {topic: comparing fractions, weight: 2}

Each generation request names one leaf, drawn with probability proportional to its weight but
steered towards leaves that are behind their share, so topics come out balanced (GLAN's point).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import yaml


class TaxonomyError(ValueError):
    """An unusable taxonomy file; the message is one line naming the file and the place."""


@dataclass(frozen=True)
class Leaf:
    discipline: str
    subject: str
    topic: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        return f"{self.discipline} / {self.subject} / {self.topic}"


def _weight(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise TaxonomyError(f"{where}: weight must be a number > 0, got {value!r}")
    return float(value)


def _topics(node, discipline: str, subject: str, where: str) -> list[Leaf]:
    if node is None:
        return []
    if isinstance(node, dict):
        return [Leaf(discipline, subject, str(t), _weight(w, f"{where} / {t}")) for t, w in node.items()]
    if isinstance(node, list):
        leaves = []
        for i, item in enumerate(node):
            if isinstance(item, str):
                leaves.append(Leaf(discipline, subject, item))
            elif isinstance(item, dict) and set(item) <= {"topic", "weight"} and isinstance(item.get("topic"), str):
                leaves.append(Leaf(discipline, subject, item["topic"],
                                   _weight(item.get("weight", 1.0), f"{where}[{i}]")))
            else:
                raise TaxonomyError(f"{where}[{i}]: expected a topic name or {{topic, weight}}, got {item!r}")
        return leaves
    raise TaxonomyError(f"{where}: expected topics as a mapping (topic: weight) or a list, got {node!r}")


def load_taxonomy(path: str | Path) -> list[Leaf]:
    """The leaves of a taxonomy file, in file order; ``TaxonomyError`` (one line) for any mistake."""
    path = Path(path)
    if not path.is_file():
        raise TaxonomyError(f"taxonomy {path}: file not found")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise TaxonomyError(f"taxonomy {path}: not valid YAML") from None
    if tree is None:
        raise TaxonomyError(f"taxonomy {path}: no leaves (the file is empty)")
    if not isinstance(tree, dict):
        raise TaxonomyError(f"taxonomy {path}: expected a mapping discipline → subject → topics")
    leaves: list[Leaf] = []
    for discipline, subjects in tree.items():
        if subjects is None:
            continue
        if not isinstance(subjects, dict):
            raise TaxonomyError(f"taxonomy {path}: {discipline}: expected a mapping of subjects, got {subjects!r}")
        for subject, topics in subjects.items():
            leaves += _topics(topics, str(discipline), str(subject), f"taxonomy {path}: {discipline} / {subject}")
    if not leaves:
        raise TaxonomyError(f"taxonomy {path}: no leaves (it needs discipline → subject → at least one topic)")
    names = [leaf.name for leaf in leaves]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise TaxonomyError(f"taxonomy {path}: leaf {dup!r} appears twice")
    return leaves


def pick_leaf(leaves: list[Leaf], counts: dict[str, int], rng: random.Random) -> Leaf:
    """A leaf for the next request: weight-proportional, with the leaves furthest below their share
    (by kept problems so far) more likely, so coverage evens out instead of drifting with chance."""
    total_w = sum(leaf.weight for leaf in leaves)
    total_n = sum(counts.get(leaf.name, 0) for leaf in leaves) + 1
    scores = []
    for leaf in leaves:
        share = leaf.weight / total_w
        deficit = max(share * total_n - counts.get(leaf.name, 0), 0.0)
        scores.append(leaf.weight * (1.0 + deficit))
    return rng.choices(leaves, weights=scores, k=1)[0]


def coverage(leaves: list[Leaf], counts: dict[str, int]) -> list[dict]:
    """Per leaf: kept problems, their share and the weight's share (the target)."""
    total_w = sum(leaf.weight for leaf in leaves)
    total_n = sum(counts.get(leaf.name, 0) for leaf in leaves)
    return [
        {"leaf": leaf.name, "count": counts.get(leaf.name, 0), "share": counts.get(leaf.name, 0) / total_n
         if total_n else 0.0, "target_share": leaf.weight / total_w}
        for leaf in leaves
    ]
