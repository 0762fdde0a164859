"""QQP's questions grouped by topic, so that whole topics can be kept away from the verifier.

A verifier checked on held-back pairs of the topics it was trained on says little about traffic
on other topics. To replay an honest domain shift, some topics are held out of training
altogether:

* the unit is the component of the all-pairs graph (:func:`spillover.training.pairs.split_pairs`
  keeps one whole in one split), represented by the mean of its texts' embeddings;
* k-means (scikit-learn, fixed seed) is fitted on the **training side only**: the components of
  the four folds, never the test split's; every component, the test split's too, then takes its
  nearest centroid's topic;
* ``held_out`` topics are drawn with a seeded generator; their components are dropped from the
  verifier's folds (``python -m spillover.training.cache_verifier --hold-out-topics N``) and make up
  the benchmark's replay (``bench/cache_shift.py``). Training and benchmark compute the same
  assignment from the same file and embeddings; :attr:`TopicSplit.digest` lets the benchmark check.

No labels are used: topics come from the texts alone.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from spillover.training.pairs import Pair, component_roots, split_of

__all__ = ["TopicSplit", "topic_split"]


@dataclass(frozen=True)
class TopicSplit:
    topics: int
    held_out: tuple[int, ...]
    #: Each text's topic (the topic of its all-pairs component).
    topic_of: dict[str, int]

    def is_held_out(self, pair: Pair) -> bool:
        return self.topic_of[pair.text_a] in self.held_out

    @property
    def digest(self) -> str:
        """A short hash of the held-out texts: equal when training and benchmark agree."""
        held = sorted(t for t, topic in self.topic_of.items() if topic in self.held_out)
        return hashlib.sha1("\n".join(held).encode("utf-8")).hexdigest()[:12]


def topic_split(pairs: list[Pair], vectors: dict[str, np.ndarray], *, topics: int = 20, held_out: int = 4, seed: int = 0) -> TopicSplit:
    """Topics fitted on the folds' components (see module doc) and ``held_out`` of them drawn."""
    from sklearn.cluster import KMeans

    roots = component_roots(pairs)
    members: dict[str, list[str]] = {}
    for text, root in roots.items():
        members.setdefault(root, []).append(text)
    order = sorted(members)
    centres = np.stack([np.mean([vectors[t] for t in members[r]], axis=0) for r in order])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-9
    training = np.array([split_of(r) != "test" for r in order])
    kmeans = KMeans(n_clusters=topics, n_init=4, random_state=seed).fit(centres[training])
    labels = kmeans.predict(centres)
    topic_of = {t: int(label) for r, label in zip(order, labels) for t in members[r]}
    chosen = tuple(sorted(random.Random(seed).sample(range(topics), held_out)))
    return TopicSplit(topics, chosen, topic_of)
