"""Classification metrics on logits ``[B, C]`` and integer labels ``[B]`` (scikit-learn semantics).

Top-1 accuracy lives in ``bestiary.plugins.tasks``; this module adds top-k accuracy, precision,
recall and F1 (macro, micro, weighted), the confusion matrix, one-vs-rest ROC-AUC, log loss and the
expected calibration error. :data:`bestiary.plugins.vision.METRICS` lists them for ``register_metrics``.

Every metric but ROC-AUC keeps additive float64 statistics (``reduction = "sum"``), so batches and
processes combine by summing. Metrics whose state depends on the number of classes ``C`` (the
confusion-matrix family and ROC-AUC) read ``C`` from the logits' last dimension on the first update
and keep that state shape from then on, through :meth:`~bestiary.engine.metrics.Metric.reset`; a
later batch with another ``C`` is an error. The engine builds metrics without arguments; pass
``num_classes`` to size the state up front, which a process that may see no batch at all needs so
that its state reduces with the others.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch  # metrics accumulate tensors; only runs import this module

from bestiary.extend import ConfigError, Metric

ECE_BINS = 15


def _logits_and_labels(outputs: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(logits [B, C], labels [B] int64)`` of one batch."""
    logits, labels = outputs, batch[1]
    if logits.dim() != 2:
        raise ValueError(f"expected logits of shape [B, C], got {list(logits.shape)}")
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"expected labels of shape [{logits.shape[0]}] for logits {list(logits.shape)}, "
                         f"got {list(labels.shape)}")
    c = logits.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"labels must be class indices in [0, {c}) for {c} logits per sample, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")
    return logits, labels.long()


def _count(labels: torch.Tensor) -> torch.Tensor:
    """The number of samples, a float64 scalar on the labels' device."""
    return torch.tensor(float(labels.numel()), dtype=torch.float64, device=labels.device)


def _divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)


class TopKAccuracy(Metric):
    """Fraction of samples whose label is among the ``k`` highest logits (1 when ``k >= C``).

    A tie at the ``k``-th score goes to the higher class index, as in scikit-learn's
    ``top_k_accuracy_score``: all-equal logits over 6 classes put label 0 last, so top-5 misses it.

    State: ``[hits, samples]``.
    """

    size = 2
    k = 5

    def __init__(self, k: int | None = None) -> None:
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(f"k must be a positive integer, got {k!r}")
            self.k = k
        super().__init__()

    def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        logits, labels = _logits_and_labels(outputs, batch)
        # The label's rank, ties going to the higher class index (scikit-learn's documented rule
        # for top_k_accuracy_score); torch.topk orders ties arbitrarily, and float16 makes many.
        own = logits.gather(1, labels[:, None])
        higher = torch.arange(logits.shape[1], device=logits.device)[None, :] > labels[:, None]
        rank = ((logits > own) | ((logits == own) & higher)).sum(-1)
        hits = (rank < self.k).sum().double()
        return torch.stack([hits, _count(labels)])

    def value(self, state: torch.Tensor) -> float:
        return float(state[0] / state[1]) if state[1] else float("nan")


class Top3Accuracy(TopKAccuracy):
    k = 3


class Top5Accuracy(TopKAccuracy):
    k = 5


class _PerClass(Metric):
    """A metric whose state size depends on the class count ``C`` (see the module docstring)."""

    def __init__(self, num_classes: int | None = None) -> None:
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.size = 0 if num_classes is None else self.size_for(num_classes)
        super().__init__()

    @abstractmethod
    def size_for(self, num_classes: int) -> int:
        """Length of the state vector (``sum``) or row width (``cat``) for ``num_classes`` classes."""

    def update(self, outputs: Any, batch: Any) -> None:
        if outputs.dim() != 2:
            raise ValueError(f"expected logits of shape [B, C], got {list(outputs.shape)}")
        c = int(outputs.shape[1])
        if self.num_classes is None:
            self.num_classes, self.size = c, self.size_for(c)
            self.reset()  # nothing accumulated yet: only the empty state changes shape
        elif c != self.num_classes:
            raise ValueError(f"logits have {c} classes, but this metric is sized for {self.num_classes} "
                             "(from num_classes or its first batch); use a new metric for another "
                             "class count")
        super().update(outputs, batch)


class _Confusion(_PerClass):
    """State: the confusion matrix ``[C, C]`` (rows true class, columns predicted), flattened."""

    def size_for(self, num_classes: int) -> int:
        return num_classes * num_classes

    def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        logits, labels = _logits_and_labels(outputs, batch)
        c = logits.shape[1]
        return torch.bincount(labels * c + logits.argmax(-1), minlength=c * c).double()

    @staticmethod
    def matrix(state: torch.Tensor) -> torch.Tensor:
        c = math.isqrt(state.numel())
        if c * c != state.numel():
            raise ValueError(f"a confusion-matrix state has C*C entries, got {state.numel()}")
        return state.reshape(c, c)


class ConfusionMatrix(_Confusion):
    """Counts ``[C, C]``: row ``i``, column ``j`` = samples of class ``i`` predicted as ``j``.

    :meth:`compute` returns a list of ``C`` lists of ``C`` ints (``[]`` before any batch).
    """

    def value(self, state: torch.Tensor) -> list[list[int]]:
        return [[int(v) for v in row] for row in self.matrix(state).round().long().tolist()]


class _Score(_Confusion):
    """Precision, recall or F1 from the confusion matrix, as ``precision_recall_fscore_support(
    labels=range(C), zero_division=0, average=...)``: a class with no predicted (or no true)
    samples scores 0, and classes absent from the data still count in the macro average."""

    score = "f1"
    average = "macro"

    def value(self, state: torch.Tensor) -> float:
        cm = self.matrix(state)
        true = cm.sum(1)
        if not true.sum():
            return float("nan")
        tp, pred = cm.diagonal(), cm.sum(0)
        if self.average == "micro":
            tp, pred, true = tp.sum(), pred.sum(), true.sum()
        if self.score == "precision":
            scores = _divide(tp, pred)
        elif self.score == "recall":
            scores = _divide(tp, true)
        else:
            scores = _divide(2 * tp, pred + true)
        if self.average == "weighted":
            return float((scores * true).sum() / true.sum())
        return float(scores.mean())


class PrecisionMacro(_Score):
    score, average = "precision", "macro"


class PrecisionMicro(_Score):
    score, average = "precision", "micro"


class PrecisionWeighted(_Score):
    score, average = "precision", "weighted"


class RecallMacro(_Score):
    score, average = "recall", "macro"


class RecallMicro(_Score):
    score, average = "recall", "micro"


class RecallWeighted(_Score):
    score, average = "recall", "weighted"


class F1Macro(_Score):
    score, average = "f1", "macro"


class F1Micro(_Score):
    score, average = "f1", "micro"


class F1Weighted(_Score):
    score, average = "f1", "weighted"


def _binary_auc(positive: torch.Tensor, score: torch.Tensor) -> float:
    """Exact ROC-AUC (Mann-Whitney U, ties counting one half); NaN without both classes."""
    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    sorted_score, order = score.sort()
    _, inverse, counts = torch.unique_consecutive(sorted_score, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2  # 1-based average rank of each run of equal scores
    ranks = torch.empty_like(score, dtype=torch.float64)
    ranks[order] = mean_rank[inverse]
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


class RocAuc(_PerClass):
    """One-vs-rest macro ROC-AUC of the softmax probabilities, exact (every sample is kept).

    ``C = 2``: the AUC of the positive class's probability, as ``roc_auc_score(y, p[:, 1])``.
    ``C > 2``: the mean of the per-class one-vs-rest AUCs, as ``roc_auc_score(y, p,
    multi_class="ovr", labels=range(C))``, except that a class without positive (or negative)
    samples is left out of the mean where scikit-learn returns NaN; NaN when no class has both.

    State (``reduction = "cat"``): rows ``[probabilities (C), label]`` in float64, ``(C + 1) * 8``
    bytes a sample.
    """

    reduction = "cat"

    def size_for(self, num_classes: int) -> int:
        return num_classes + 1

    def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        logits, labels = _logits_and_labels(outputs, batch)
        return torch.cat([logits.double().softmax(-1), labels.double()[:, None]], dim=1)

    def value(self, state: torch.Tensor) -> float:
        if state.numel() == 0:
            return float("nan")
        probs, labels = state[:, :-1], state[:, -1].long()
        if probs.shape[1] == 2:
            return _binary_auc(labels == 1, probs[:, 1])
        aucs = [_binary_auc(labels == c, probs[:, c]) for c in range(probs.shape[1])]
        defined = [a for a in aucs if not math.isnan(a)]
        return sum(defined) / len(defined) if defined else float("nan")


class LogLoss(Metric):
    """Mean negative log-likelihood of the label under the softmax probabilities, each probability
    clipped to ``[eps, 1 - eps]`` (float64 machine epsilon) as ``sklearn.metrics.log_loss`` does
    for float64 probabilities. State: ``[sum of losses, samples]``."""

    size = 2
    higher_is_better = False

    def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        logits, labels = _logits_and_labels(outputs, batch)
        eps = torch.finfo(torch.float64).eps
        # log_softmax keeps the precision that softmax-then-log loses for small probabilities.
        logp = logits.double().log_softmax(-1).gather(1, labels[:, None])
        return torch.stack([-logp.clamp(math.log(eps), math.log1p(-eps)).sum(), _count(labels)])

    def value(self, state: torch.Tensor) -> float:
        return float(state[0] / state[1]) if state[1] else float("nan")


class ExpectedCalibrationError(Metric):
    """Expected calibration error over 15 equal-width confidence bins.

    Confidence is the highest softmax probability; bin ``b`` holds confidences in
    ``(b / 15, (b + 1) / 15]``. ECE = sum over bins of ``|correct_b - confidence_b| / N`` (sums
    over the bin's samples), i.e. the sample-weighted mean gap between accuracy and confidence.
    State: ``[count (15), sum of confidence (15), sum of correct (15)]``.
    """

    size = 3 * ECE_BINS
    higher_is_better = False

    def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        logits, labels = _logits_and_labels(outputs, batch)
        confidence, predicted = logits.double().softmax(-1).max(-1)
        edges = torch.linspace(0, 1, ECE_BINS + 1, dtype=torch.float64, device=confidence.device)[1:]
        bins = torch.bucketize(confidence, edges).clamp(max=ECE_BINS - 1)
        out = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=confidence.device)
        out[0].index_add_(0, bins, torch.ones_like(confidence))
        out[1].index_add_(0, bins, confidence)
        out[2].index_add_(0, bins, (predicted == labels).double())
        return out.reshape(-1)

    def value(self, state: torch.Tensor) -> float:
        count, confidence, correct = state.reshape(3, ECE_BINS)
        n = count.sum()
        return float((correct - confidence).abs().sum() / n) if n else float("nan")
