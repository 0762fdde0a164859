"""The routers and the answer verifier: what training fits is what serving computes (numpy), the
shipped weights load with a usable threshold, and the router reads the turn being asked."""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from costlevers.routing.features import SHAPE_NAMES, prompt_text, shape_features
from costlevers.routing.router import BUILTIN_WEIGHTS, LinearRouter, load_router
from costlevers.routing.verifier import ANSWER_FEATURE_NAMES, answer_features, load_verifier
from spillover.training.router import cascade_order_scores, checks_fail, fit_knn, fit_linear, fit_verifier, out_of_fold
from spillover.training.routing_data import assign_folds


def _sample(n: int = 300, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, d)).astype(np.float32)
    gains = np.where(x[:, 0] > 0.8, 1, np.where(x[:, 1] > 1.2, -1, 0))
    return x, gains


def test_the_linear_router_scores_as_scikit_learn_predicts() -> None:
    x, gains = _sample()
    router = fit_linear(x, gains, c=1.0)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=3000).fit(scaler.transform(x), gains)
    p = model.predict_proba(scaler.transform(x))
    expected = p[:, list(model.classes_).index(1)] - p[:, list(model.classes_).index(-1)]
    assert np.allclose(router.scores(x), expected, atol=1e-4)
    assert np.corrcoef(router.scores(x), x[:, 0])[0, 1] > 0.5, "the feature that decides the gain drives the score"


def test_knn_scores_the_mean_gain_of_the_nearest_prompts() -> None:
    vectors = np.eye(4, dtype=np.float32)
    knn = fit_knn(np.vstack([vectors, vectors]), np.array([1, 0, -1, 0, 1, 0, -1, 0]), k=2)
    assert knn.scores(vectors[:3]).tolist() == [1.0, 0.0, -1.0]


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_group() -> None:
    groups = [f"g{i % 7}" for i in range(70)]
    folds = assign_folds(groups, 3)
    seen: list[tuple[set[str], set[str]]] = []

    def fit_and_score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        seen.append(({groups[i] for i in train}, {groups[i] for i in test}))
        return np.zeros(len(test))

    out_of_fold(groups, 3, fit_and_score)
    assert all(not (train & test) for train, test in seen) and sorted(set(folds.values())) == [0, 1, 2]
    assert sorted(len([g for g in folds if folds[g] == k]) for k in range(3)) == [2, 2, 3], "groups dealt evenly"


def test_the_shipped_router_and_verifier_load_with_finite_thresholds() -> None:
    router, calibration = load_router(BUILTIN_WEIGHTS)
    assert isinstance(router, LinearRouter) and router.mean.shape == (384 + len(SHAPE_NAMES),)
    assert math.isfinite(calibration.threshold(0.95)) and calibration.threshold(0.90) >= calibration.threshold(0.95)
    verifier, verifier_calibration = load_verifier()
    assert verifier.mean.shape == (len(ANSWER_FEATURE_NAMES) + len(SHAPE_NAMES),)
    good = "3 x 60 = <<3*60=180>>180 meters, and 180 x 3 = <<180*3=540>>540 a week.\n#### 540"
    bad = "He runs 3 sprints of 60 meters. However, I assume he runs more, approximately 200."
    prompt = "James runs 3 sprints 3 times a week. He runs 60 meters each sprint. How many meters a week?"
    assert verifier.score(prompt, bad) > verifier.score(prompt, good)
    assert math.isfinite(verifier_calibration.threshold(0.95))


def test_the_verifier_fits_and_the_cascade_escalates_failed_checks_first() -> None:
    answers = ["1 + 1 = <<1+1=2>>2\n#### 2", "1 + 1 = <<1+1=3>>3\n#### 3", "it is two", "2 * 2 = <<2*2=4>>4\n#### 4"] * 10
    features = np.stack([answer_features("What is 1 + 1, or 2 * 2?", a) for a in answers])
    wrong = np.array([0, 1, 1, 0] * 10)
    verifier = fit_verifier(features, wrong)
    scores = verifier.scores(features)
    assert scores[1] > scores[0] and scores[2] > scores[3]
    failed = np.array([checks_fail(a) for a in answers])
    assert failed[:4].tolist() == [False, True, True, False]
    assert np.all(cascade_order_scores(scores, failed)[failed] > cascade_order_scores(scores, failed)[~failed].max())


def test_the_router_reads_the_last_user_turn_and_its_shape() -> None:
    body = {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
                         {"role": "user", "content": [{"type": "text", "text": "What is 12 * 7?"}]}],
            "tools": [{"type": "function", "function": {"name": "f"}}]}
    text = prompt_text(body)
    assert text == "What is 12 * 7?" and prompt_text({"prompt": "p"}) == "p"
    shape = dict(zip(SHAPE_NAMES, shape_features(body, text)))
    assert shape["has_tools"] == 1.0 and shape["log_turns"] == math.log(2) and shape["digit_share"] > 0
