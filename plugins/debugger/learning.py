"""Rules on the learning curve and the data: loss explosion, loss not decreasing, overfitting, overtraining,
class imbalance."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from bestiary.extend import Finding, Rule, fmt, names


class LossExplosion(Rule):
    """The training loss rises above its recent level (the median of the last ``window`` finite
    logged losses) by more than ``factor`` times that level, or turns NaN or Inf after finite
    values: the run is diverging, often within a few steps of the jump.

    The level's magnitude is taken as at least ``min_level``, so a loss that converged near zero
    is not flagged for a small absolute rise. Judged from the ``min_points``-th logged loss on.

    :param factor: rise over the recent level, in multiples of its magnitude, counted as an explosion
        (100: two orders of magnitude).
    :param window: logged training losses the recent level is the median of.
    :param min_points: logged losses needed before the rule judges (the first steps set the level).
    :param min_level: smallest magnitude of the recent level.
    """

    severity = "error"

    def __init__(self, *, factor: float = 100.0, window: int = 10, min_points: int = 3, min_level: float = 0.01,
                 action: str = "report") -> None:
        super().__init__(action=action)
        self.factor, self.window, self.min_points, self.min_level = factor, window, min_points, min_level
        self.recent: list[float] = []

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> list[Finding]:
        loss = values.get("loss")
        if split != "train" or not isinstance(loss, (int, float)):
            return []
        loss = float(loss)
        found: list[Finding] = []
        if len(self.recent) >= self.min_points:
            level = statistics.median(self.recent)
            scale = max(abs(level), self.min_level)
            if not math.isfinite(loss) or loss - level > self.factor * scale:
                found = self._explosion(step, loss, level)
        if math.isfinite(loss):
            self.recent = [*self.recent, loss][-self.window:]
        return found

    def _explosion(self, step: int, loss: float, level: float) -> list[Finding]:
        times = f"{fmt(loss / level)} times " if math.isfinite(loss) and level > 0 else ""
        return self.finding(
            "loss", step,
            f"the training loss jumped to {fmt(loss)} at step {step}, {times}its recent level {fmt(level)} "
            f"(median of the last {len(self.recent)} logged losses): training is diverging",
            "lower the learning rate (try 10 times lower) or add warm-up steps, clip gradients (--clip-grad-norm 1.0), "
            "check the schedule does not raise the learning rate too far, and look for bad samples (huge values, "
            "wrong labels) in the batches around this step",
            {"loss": loss if math.isfinite(loss) else str(loss), "recent_level": level, "factor": self.factor,
             "window": self.window})


class LossNotDecreasing(Rule):
    """The training loss of the last ``window`` steps is not lower, by at least ``min_improvement``
    (relative), than over the ``window`` steps before, while it is still above ``converged``
    times its first value (a loss that already fell that far is converging, not stuck).

    :param window: steps in each of the two windows compared.
    :param min_improvement: relative decrease the later window must show (0.01: 1 %).
    :param converged: fraction of the first loss below which the rule stays quiet.
    """

    def __init__(self, *, window: int = 100, min_improvement: float = 0.01, converged: float = 0.5,
                 action: str = "report") -> None:
        super().__init__(action=action)
        self.window, self.min_improvement, self.converged = window, min_improvement, converged
        self.points: list[tuple[int, float]] = []

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> list[Finding]:
        loss = values.get("loss")
        if split != "train" or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            return []
        self.points.append((step, float(loss)))
        first = self.points[0][1]
        recent = [v for s, v in self.points if s > step - self.window]
        before = [v for s, v in self.points if step - 2 * self.window < s <= step - self.window]
        if not before or self.points[0][0] > step - 2 * self.window + 1 or len(recent) < 2:
            return []
        now, then = sum(recent) / len(recent), sum(before) / len(before)
        if now <= then * (1 - self.min_improvement) or now <= self.converged * first:
            return []
        return self.finding(
            "loss", step,
            f"the training loss averaged {fmt(now)} over steps {step - self.window + 1}-{step}, against {fmt(then)} "
            f"over the {self.window} steps before (first logged: {fmt(first)}): it is not going down",
            "check that labels match their inputs (shuffled or misaligned labels look like this), try a learning "
            "rate 3-10 times higher or lower, check the loss suits the task, and try overfitting a handful of "
            "batches first to prove the model can learn",
            {"recent_mean": now, "previous_mean": then, "first": first, "window": self.window})


class _TrainLoss(Rule):
    """Keeps the training losses logged since the last evaluation."""

    def __init__(self, *, action: str = "report") -> None:
        super().__init__(action=action)
        self.train: list[float] = []

    def _train_loss(self, split: str, values: Mapping[str, float]) -> bool:
        loss = values.get("loss")
        if split == "train" and isinstance(loss, (int, float)) and math.isfinite(loss):
            self.train.append(float(loss))
            return True
        return split == "train"


class Overfitting(_TrainLoss):
    """At an evaluation, the validation loss exceeds the training loss (logged since the previous
    evaluation) by more than ``ratio`` of it and by at least ``min_gap``, while the training loss has
    fallen since the first evaluation (an untrained model has a gap too, but has not overfitted).

    :param ratio: allowed relative gap (0.5: validation loss up to 1.5 times the training loss).
    :param min_gap: smallest absolute gap reported (ignores gaps between tiny losses).
    :param start_step: evaluations before this step are not judged.
    """

    def __init__(self, *, ratio: float = 0.5, min_gap: float = 0.1, start_step: int = 0, action: str = "report") -> None:
        super().__init__(action=action)
        self.ratio, self.min_gap, self.start_step = ratio, min_gap, start_step
        self.first_gap: tuple[int, float] | None = None

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> list[Finding]:
        if self._train_loss(split, values) or split != "validation":
            return []
        recent, self.train = self.train[-3:], []
        val = values.get("loss")
        if not recent or step < self.start_step or not isinstance(val, (int, float)) or not math.isfinite(val):
            return []
        train = sum(recent) / len(recent)
        gap = val - train
        if self.first_gap is None:
            self.first_gap = (step, train)
            return []
        if gap <= self.min_gap or gap <= self.ratio * train or train >= self.first_gap[1]:
            return []
        return self.finding(
            "gap", step,
            f"the validation loss {fmt(val)} is {fmt(val / train if train > 0 else math.inf)} times the training loss "
            f"{fmt(train)} (which fell from {fmt(self.first_gap[1])} at step {self.first_gap[0]}): the model fits the "
            "training data much better than data it has not seen",
            "regularise: more data or augmentation, weight decay (--weight-decay 0.05), dropout or label smoothing, "
            "a smaller model, or stop earlier (--early-stopping 3)",
            {"validation_loss": val, "training_loss": train, "gap": gap, "first_training_loss": self.first_gap[1],
             "ratio": self.ratio})


class Overtraining(Rule):
    """The validation loss has not improved on its best for ``patience`` evaluations in a row.

    :param patience: evaluations without improvement before a finding.
    :param min_delta: smallest decrease counted as an improvement.
    """

    def __init__(self, *, patience: int = 3, min_delta: float = 0.0, action: str = "report") -> None:
        super().__init__(action=action)
        self.patience, self.min_delta = patience, min_delta
        self.best: tuple[int, float] | None = None
        self.bad = 0

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> list[Finding]:
        val = values.get("loss")
        if split != "validation" or not isinstance(val, (int, float)) or not math.isfinite(val):
            return []
        if self.best is None or val < self.best[1] - self.min_delta:
            self.best, self.bad = (step, float(val)), 0
            return []
        self.bad += 1
        if self.bad < self.patience:
            return []
        return self.finding(
            "plateau", step,
            f"the validation loss has not improved for {self.bad} evaluations: best {fmt(self.best[1])} at step "
            f"{self.best[0]}, now {fmt(val)}",
            f"further training is wasted or harmful: keep the model of step {self.best[0]}, stop earlier "
            "(--early-stopping N), or lower the learning rate for the rest of the run",
            {"best": self.best[1], "best_step": self.best[0], "current": val, "evaluations": self.bad})


class ClassImbalance(Rule):
    """The training split's most frequent class has more than ``max_ratio`` times the samples of its
    least frequent one, or a class has none. Read from the dataset's labels before training.

    :param max_ratio: largest allowed ratio between the most and the least frequent class.
    """

    needs = ("labels",)

    def __init__(self, *, max_ratio: float = 10.0, action: str = "report") -> None:
        super().__init__(action=action)
        self.max_ratio = max_ratio

    def start(self, info: Mapping[str, Any]) -> list[Finding]:
        labels = info.get("labels") or {}
        counts, classes = labels.get("counts"), labels.get("classes")
        if not counts:
            return []
        classes = classes or [str(i) for i in range(len(counts))]
        empty = [c for c, n in zip(classes, counts) if n == 0]
        present = [(n, c) for c, n in zip(classes, counts) if n > 0]
        most, least = max(present), min(present)
        ratio = most[0] / least[0]
        if not empty and ratio <= self.max_ratio:
            return []
        seen = []
        if empty:
            seen.append(f"class(es) {names(empty)} have no training samples")
        if ratio > self.max_ratio:
            seen.append(f"class {most[1]} has {most[0]} training samples but class {least[1]} only {least[0]} "
                        f"({fmt(ratio)} times fewer)")
        return self.finding(
            "labels", 0, "; ".join(seen),
            "the model will favour the frequent classes: oversample the rare ones (a weighted sampler), weight "
            "the loss by inverse class frequency, collect more samples of the rare classes, and judge the model "
            "by per-class recall or balanced accuracy rather than accuracy",
            {"counts": dict(zip(classes, counts)), "ratio": ratio, "max_ratio": self.max_ratio})
