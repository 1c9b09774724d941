"""The vision classification metrics against scikit-learn (and numpy for ECE): fed in uneven
batches that miss classes, in one go, and split over two simulated processes whose states are
summed or concatenated as the strategies' all-reduce and all-gather do."""

from __future__ import annotations

import functools
import inspect
import math
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
import itertools

from sklearn import metrics as skm

from bestiary.engine.metrics import Metric
from bestiary.plugins.vision import METRICS as VISION_METRICS
from bestiary.plugins.vision import metrics as vm

SEEDS = (0, 1, 2)
CLASSES = (2, 3, 7)
SCENARIOS = ("full", "absent", "extreme", "ties")
N = 157
SCORES = {"precision": 0, "recall": 1, "f1": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tensors here are tiny: waking torch's thread pool for each op costs more than the op,
    and much more on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def make_data(seed: int, c: int, scenario: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` (float64) and labels ``[N]``.

    ``absent``: class C-1 never occurs as a label nor as a prediction, and (for C > 2) class 0
    occurs as a label but is never predicted. ``extreme``: probabilities below float64 epsilon, so
    log loss clips. ``ties``: four distinct logit rows, so scores tie heavily. Cached: do not
    modify the tensors.
    """
    g = torch.Generator().manual_seed(seed * 100 + c)
    logits = torch.randn(N, c, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (N,), generator=g)
    if scenario == "absent":
        labels = torch.randint(0, c - 1, (N,), generator=g)
        logits[:, c - 1] -= 20
        if c > 2:
            logits[:, 0] -= 20
    elif scenario == "extreme":
        logits = logits * 60
    elif scenario == "ties":
        logits = torch.randn(4, c, generator=g, dtype=torch.float64)[torch.randint(0, 4, (N,), generator=g)]
    return logits, labels


def chunks(logits: torch.Tensor, labels: torch.Tensor, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Uneven batches (one empty, one of a single sample) of the samples sorted by label, so most
    batches lack some classes."""
    order = torch.sort(labels, stable=True).indices
    logits, labels = logits[order], labels[order]
    rng = np.random.default_rng(seed)
    cuts = sorted({0, 1, 2, *rng.integers(3, len(labels), size=6).tolist(), len(labels)})
    return [(logits[a:b], labels[a:b]) for a, b in itertools.pairwise(cuts)]


@functools.cache
def batches(seed: int, c: int, scenario: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return chunks(*make_data(seed, c, scenario), seed)


def feed(metric: Metric, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> Metric:
    for logits, labels in parts:
        metric.update(logits, (torch.zeros(len(labels), 1), labels))
    return metric


def probabilities(logits: torch.Tensor) -> np.ndarray:
    return logits.softmax(-1).numpy()


def sk_log_loss(y: np.ndarray, p: np.ndarray, c: int) -> float:
    # scikit-learn 1.9 renamed y_pred to y_proba.
    name = "y_proba" if "y_proba" in inspect.signature(skm.log_loss).parameters else "y_pred"
    return skm.log_loss(y, **{name: p}, labels=list(range(c)))


def sk_roc_auc(y: np.ndarray, p: np.ndarray, c: int) -> float:
    """scikit-learn's one-vs-rest macro AUC, over the classes with both positives and negatives
    (where scikit-learn itself gives NaN)."""
    if c == 2:
        return skm.roc_auc_score(y, p[:, 1]) if len(set(y.tolist())) == 2 else math.nan
    defined = [c_ for c_ in range(c) if 0 < (y == c_).sum() < len(y)]
    if len(defined) == c:
        return skm.roc_auc_score(y, p, multi_class="ovr", labels=list(range(c)))
    if not defined:
        return math.nan
    return float(np.mean([skm.roc_auc_score(y == c_, p[:, c_]) for c_ in defined]))


def np_ece(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    confidence, predicted = p.max(1), p.argmax(1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            gap = abs((predicted[inside] == y[inside]).mean() - confidence[inside].mean())
            total += inside.mean() * gap
    return total


@functools.cache
def sk_prf(seed: int, c: int, scenario: str, average: str) -> tuple[float, float, float]:
    """Precision, recall and F1 on ``make_data(seed, c, scenario)``, computed once for all three."""
    logits, labels = make_data(seed, c, scenario)
    result = skm.precision_recall_fscore_support(labels.numpy(), logits.argmax(1).numpy(),
                                                 labels=list(range(c)), average=average, zero_division=0)
    return float(result[0]), float(result[1]), float(result[2])


def reference(name: str, logits: torch.Tensor, labels: torch.Tensor,
              key: tuple[int, int, str] | None = None) -> object:
    """What scikit-learn (or numpy) says the metric named ``name`` is on the whole data (``key``:
    the ``make_data`` arguments of that data, to reuse scikit-learn's precision/recall/F1)."""
    c = logits.shape[1]
    y, p = labels.numpy(), probabilities(logits)
    pred = p.argmax(1)
    if name in ("top3", "top5"):
        k = int(name[3:])
        return 1.0 if k >= c else skm.top_k_accuracy_score(y, p, k=k, labels=list(range(c)))
    score, _, average = name.partition("_")
    if score in SCORES and key is not None:
        return sk_prf(*key, average)[SCORES[score]]
    if score in SCORES:
        result = skm.precision_recall_fscore_support(y, pred, labels=list(range(c)), average=average,
                                                     zero_division=0)
        return float(result[SCORES[score]])
    if name == "confusion_matrix":
        return skm.confusion_matrix(y, pred, labels=list(range(c))).tolist()
    if name == "roc_auc":
        return sk_roc_auc(y, p, c)
    if name == "log_loss":
        return sk_log_loss(y, p, c)
    if name == "ece":
        return np_ece(y, p)
    raise AssertionError(name)


def build(name: str, **kwargs: object) -> Metric:
    cls = next(row[1] for row in VISION_METRICS if row[0] == name)
    return getattr(vm, cls)(**kwargs)


def assert_same(actual: object, expected: object, rel: float = 1e-9) -> None:
    if isinstance(expected, list):
        assert actual == expected
        assert all(type(v) is int for row in actual for v in row)  # type: ignore[union-attr]
        return
    assert isinstance(actual, float)
    if math.isnan(expected):  # type: ignore[arg-type]
        assert math.isnan(actual)
    else:
        assert actual == pytest.approx(expected, rel=rel, abs=1e-12)


NAMES = [row[0] for row in VISION_METRICS]


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_over_batches_in_one_go_and_across_processes(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about undefined scores; we check them
        for seed in SEEDS:
            for c in CLASSES:
                for scenario in SCENARIOS:
                    logits, labels = make_data(seed, c, scenario)
                    expected = reference(name, logits, labels, (seed, c, scenario))
                    parts = batches(seed, c, scenario)
                    batched = feed(build(name), parts).compute()
                    whole = feed(build(name), [(logits, labels)]).compute()
                    assert_same(batched, expected)
                    assert_same(whole, expected)
                    assert_same(batched, whole, rel=1e-12)

                    # Two processes with disjoint, unequal shares; reduce as the strategies do.
                    half = len(parts) // 2
                    a, b = feed(build(name), parts[:half]), feed(build(name), parts[half:])
                    if a.reduction == "cat":
                        state = torch.cat([a.state, b.state])
                    else:
                        state = a.state + b.state
                    assert_same(a.compute(state), whole, rel=1e-12)


def test_metrics_table() -> None:
    assert ["top3", "top5",
                     *(f"{s}_{a}" for s in ("precision", "recall", "f1")
                       for a in ("macro", "micro", "weighted")),
                     "confusion_matrix", "roc_auc", "log_loss", "ece"] == NAMES
    assert "accuracy" not in NAMES  # top-1 accuracy belongs to bestiary.plugins.tasks
    for name, cls, description, higher_is_better in VISION_METRICS:
        assert hasattr(vm, cls) and description
        metric = build(name)
        assert isinstance(metric, Metric)
        if higher_is_better is not None:
            assert metric.higher_is_better is higher_is_better
    assert next(row[3] for row in VISION_METRICS if row[0] == "confusion_matrix") is None


def test_top_k_with_explicit_k() -> None:
    logits, labels = make_data(0, 7, "full")
    y, p = labels.numpy(), probabilities(logits)
    for k in (1, 2, 6, 7, 9):
        expected = 1.0 if k >= 7 else skm.top_k_accuracy_score(y, p, k=k, labels=list(range(7)))
        assert_same(feed(vm.TopKAccuracy(k), chunks(logits, labels, 0)).compute(), expected)
    assert_same(feed(vm.TopKAccuracy(1), [(logits, labels)]).compute(), skm.accuracy_score(y, p.argmax(1)))
    with pytest.raises(ValueError, match="k must be"):
        vm.TopKAccuracy(0)


@pytest.mark.parametrize("cls", [vm.ConfusionMatrix, vm.F1Macro, vm.RocAuc])
def test_state_is_sized_from_the_first_batch_and_stays(cls: type) -> None:
    logits, labels = make_data(1, 3, "full")
    width = 4 if cls is vm.RocAuc else 9
    metric = cls()
    assert metric.num_classes is None and metric.state.numel() == 0
    feed(metric, [(logits[:5], labels[:5])])
    assert metric.num_classes == 3
    assert metric.state.shape[-1] == width
    metric.reset()
    assert metric.state.shape == ((0, width) if cls is vm.RocAuc else (width,))
    with pytest.raises(ValueError, match="sized for 3"):
        feed(metric, [make_data(1, 7, "full")])

    sized = cls(num_classes=3)
    assert sized.state.shape == ((0, width) if cls is vm.RocAuc else (width,))
    with pytest.raises(ValueError, match="sized for 3"):
        feed(sized, [make_data(1, 2, "full")])
    with pytest.raises(ValueError, match="num_classes"):
        cls(num_classes=0)


def test_a_process_without_batches_reduces_when_presized() -> None:
    logits, labels = make_data(2, 7, "full")
    for name in ("precision_weighted", "confusion_matrix", "ece", "log_loss"):
        busy = feed(build(name), [(logits, labels)])
        per_class = name in ("precision_weighted", "confusion_matrix")
        idle = build(name, num_classes=7) if per_class else build(name)
        assert_same(busy.compute(busy.state + idle.state), busy.compute())
    busy, idle = feed(vm.RocAuc(), [(logits, labels)]), vm.RocAuc(num_classes=7)
    assert busy.compute(torch.cat([busy.state, idle.state])) == busy.compute()


@pytest.mark.parametrize("name", NAMES)
def test_empty_metric(name: str) -> None:
    value = build(name).compute()
    if name == "confusion_matrix":
        assert value == []
    else:
        assert math.isnan(value)


@pytest.mark.parametrize("name", ["top5", "f1_macro", "roc_auc", "log_loss", "ece"])
def test_bad_inputs_say_what_is_wrong(name: str) -> None:
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        build(name).update(logits, (None, torch.tensor([0, 1, 3, 2])))
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        build(name).update(torch.randn(4), (None, torch.tensor([0, 1, 1, 2])))
    with pytest.raises(ValueError, match="labels of shape"):
        build(name).update(logits, (None, torch.tensor([0, 1])))


def test_low_precision_logits() -> None:
    """Logits in float32 or bfloat16 (autocast) are promoted to float64 before softmax."""
    logits, labels = make_data(0, 7, "full")
    for dtype in (torch.float32, torch.bfloat16):
        low = logits.to(dtype)
        for name in ("roc_auc", "log_loss", "ece", "f1_weighted", "top3"):
            assert_same(feed(build(name), [(low, labels)]).compute(), reference(name, low.double(), labels))
