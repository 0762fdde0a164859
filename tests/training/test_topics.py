"""Topics for holding whole parts of QQP out of the verifier's training: a component never
straddles topics, the draw is repeatable, and the held-out topics' texts are exactly the
components assigned to them."""

from __future__ import annotations

import numpy as np

from spillover.training.pairs import Pair, component_roots
from spillover.training.topics import topic_split


def corpus() -> tuple[list[Pair], dict[str, np.ndarray]]:
    """Six themes, each a direction in 8 dimensions; 20 pairs a theme, the pair's texts close to it."""
    rng = np.random.default_rng(0)
    pairs, vectors = [], {}
    for theme in range(6):
        centre = np.eye(8)[theme]
        for i in range(20):
            a, b = f"theme {theme} question {i}", f"theme {theme} question {i}, put another way"
            for text in (a, b):
                v = centre + rng.normal(0, 0.05, 8)
                vectors[text] = v / np.linalg.norm(v)
            pairs.append(Pair(a, b, i % 2))
    return pairs, vectors


def test_topics_keep_components_whole_and_the_draw_repeats() -> None:
    pairs, vectors = corpus()
    split = topic_split(pairs, vectors, topics=6, held_out=2, seed=0)
    roots = component_roots(pairs)
    by_root: dict[str, set[int]] = {}
    for text, root in roots.items():
        by_root.setdefault(root, set()).add(split.topic_of[text])
    assert all(len(topics) == 1 for topics in by_root.values()), "a component lies in one topic"
    themes = {int(t.split()[1]) for t, topic in split.topic_of.items() if topic in split.held_out}
    assert len(themes) == 2, "well-separated themes are topics of their own: two held out, whole"
    assert all(split.is_held_out(p) == (int(p.text_a.split()[1]) in themes) for p in pairs)
    again = topic_split(pairs, vectors, topics=6, held_out=2, seed=0)
    assert again.held_out == split.held_out and again.digest == split.digest
    assert topic_split(pairs, vectors, topics=6, held_out=3, seed=0).digest != split.digest
