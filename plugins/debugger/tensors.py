"""Rules on tensors: gradients, weights, weight updates and activations."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from bestiary.extend import Finding, Rule, fmt, names


class _Streak(Rule):
    """Counts, per layer, the collections in a row where a condition held."""

    def __init__(self, *, action: str = "report") -> None:
        super().__init__(action=action)
        self.streak: dict[str, int] = {}
        self.since: dict[str, int] = {}

    def _update(self, step: int, flagged: Mapping[str, float], seen: Iterable[str], patience: int) -> list[str]:
        """Layers whose condition has now held ``patience`` collections in a row, not yet reported."""
        ready = []
        for name in seen:
            if name in flagged:
                self.streak[name] = self.streak.get(name, 0) + 1
                self.since.setdefault(name, step)
                if self.streak[name] >= patience and ("layer", name) not in self._reported:
                    ready.append(name)
            else:
                self.streak.pop(name, None)
                self.since.pop(name, None)
        return ready

    def _group(self, step: int, ready: list[str], values: Mapping[str, float], message: str, suggestion: str,
               since_map: Mapping[str, int] | None = None, percent: bool = False, **evidence: Any) -> list[Finding]:
        if not ready:
            return []
        for name in ready:
            self._reported.add(("layer", name))
        worst = min(ready, key=lambda n: values[n]) if evidence.pop("lowest", False) else max(ready, key=lambda n: values[n])
        since = min((since_map or self.since)[n] for n in ready)
        value = f"{values[worst]:.0%}" if percent else fmt(values[worst])
        text = message.format(layers=names(ready), worst=worst, value=value, since=since, step=step)
        return self.finding(("group", step), step, text, suggestion,
                            {"layers": {n: values[n] for n in ready}, "since_step": since, **evidence})


class VanishingGradient(_Streak):
    """The mean absolute gradient of a layer falls below ``threshold`` for ``patience`` collections in a row.

    :param threshold: mean absolute gradient under which a layer counts as vanishing.
    :param patience: collections in a row before a finding.
    """

    needs = ("gradients",)

    def __init__(self, *, threshold: float = 1e-7, patience: int = 3, action: str = "report") -> None:
        super().__init__(action=action)
        self.threshold, self.patience = threshold, patience

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        grads = record.get("gradients") or {}
        values = {n: s["mean_abs"] for n, s in grads.items() if s.get("mean_abs") is not None}
        flagged = {n: v for n, v in values.items() if v < self.threshold}
        ready = self._update(record["step"], flagged, values, self.patience)
        return self._group(
            record["step"], ready, values,
            f"gradients of {{layers}} stayed below {fmt(self.threshold)} (mean absolute value) for {self.patience} "
            "collections in a row, since step {since} (smallest: {worst} at {value})",
            "the signal does not reach these layers: lower the depth, add normalisation (BatchNorm or LayerNorm), "
            "use a residual architecture or ReLU-family activations instead of sigmoid/tanh, or raise the learning rate",
            lowest=True, threshold=self.threshold)


class ExplodingTensor(Rule):
    """A gradient, weight, activation or the loss holds NaN or Inf, or a magnitude above ``max_abs``.

    Checked on every collection and on every logged training loss. Stops the run by default: a run
    with NaN weights cannot recover.

    :param max_abs: largest magnitude still counted as finite.
    """

    needs = ("gradients", "weights", "activations")
    severity = "error"

    def __init__(self, *, max_abs: float = 1e8, action: str = "stop") -> None:
        super().__init__(action=action)
        self.max_abs = max_abs

    SUGGESTION = ("lower the learning rate (try 10 times lower), clip gradients (--clip-grad-norm 1.0), add warm-up "
                  "steps, check the inputs and labels for NaN/Inf, and prefer bf16 to fp16")

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        bad: dict[str, str] = {}
        for group in ("loss", "gradients", "weights", "activations"):
            rows = {"loss": {"min": record["loss"], "max": record["loss"]}} if group == "loss" and "loss" in record \
                else (record.get(group) or {}) if group != "loss" else {}
            for name, row in rows.items():
                if row.get("max_abs") is not None:
                    values = [row["max_abs"], row.get("norm", 0.0)]
                elif row.get("min") is not None and row.get("max") is not None:
                    values = [row["min"], row["max"]]
                else:
                    continue
                label = "loss" if group == "loss" else f"{group[:-1]} {name}"
                if not all(math.isfinite(v) for v in values):
                    bad[label] = "NaN/Inf"
                else:
                    magnitude = abs(values[0]) if row.get("max_abs") is not None else max(abs(v) for v in values)
                    if magnitude > self.max_abs:
                        bad[label] = fmt(magnitude)
        if not bad:
            return []
        nonfinite = [k for k, v in bad.items() if v == "NaN/Inf"]
        huge = [f"{k} ({v})" for k, v in bad.items() if v != "NaN/Inf"]
        what = (f"NaN or Inf values in {names(nonfinite)}" if nonfinite
                else f"magnitudes above {fmt(self.max_abs)} in {names(huge)}")
        return self.finding("tensors", record["step"], what, self.SUGGESTION, {"tensors": bad, "max_abs": self.max_abs})

    def metrics(self, step: int, split: str, values: Mapping[str, float]) -> list[Finding]:
        loss = values.get("loss")
        if split == "train" and isinstance(loss, float) and not math.isfinite(loss):
            return self.finding("tensors", step, f"the training loss is {fmt(loss)}", self.SUGGESTION, {"loss": str(loss)})
        return []


class DeadRelu(_Streak):
    """A ReLU outputs zero for every sample of the batch in at least ``threshold`` of its channels,
    for ``patience`` collections in a row.

    :param threshold: fraction of dead channels (0-1) that counts as a dead layer.
    :param patience: collections in a row before a finding.
    """

    needs = ("activations",)

    def __init__(self, *, threshold: float = 0.5, patience: int = 2, action: str = "report") -> None:
        super().__init__(action=action)
        self.threshold, self.patience = threshold, patience

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        acts = {n: s for n, s in (record.get("activations") or {}).items() if s.get("kind") == "relu"}
        values = {n: s["dead"] for n, s in acts.items() if s.get("dead") is not None}
        flagged = {n: v for n, v in values.items() if v >= self.threshold}
        ready = self._update(record["step"], flagged, values, self.patience)
        return self._group(
            record["step"], ready, values,
            f"the ReLU layer(s) {{layers}} output zero for every sample in at least {self.threshold:.0%} of their "
            f"channels for {self.patience} collections in a row, since step {{since}} (worst: {{worst}}, with "
            "{value} of its channels dead)",
            "those units no longer learn: lower the learning rate, use LeakyReLU or GELU, initialise with He "
            "(kaiming) initialisation and non-negative biases, or add normalisation before the activation",
            percent=True, threshold=self.threshold)


class SaturatedActivation(_Streak):
    """A sigmoid or tanh layer puts at least ``threshold`` of its outputs within 1 % of its bounds,
    where its gradient vanishes, for ``patience`` collections in a row.

    :param threshold: fraction of saturated outputs (0-1).
    :param patience: collections in a row before a finding.
    """

    needs = ("activations",)

    def __init__(self, *, threshold: float = 0.5, patience: int = 2, action: str = "report") -> None:
        super().__init__(action=action)
        self.threshold, self.patience = threshold, patience

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        acts = {n: s for n, s in (record.get("activations") or {}).items() if s.get("kind") in ("sigmoid", "tanh")}
        values = {n: s["saturated"] for n, s in acts.items() if s.get("saturated") is not None}
        flagged = {n: v for n, v in values.items() if v >= self.threshold}
        ready = self._update(record["step"], flagged, values, self.patience)
        return self._group(
            record["step"], ready, values,
            f"the sigmoid/tanh layer(s) {{layers}} saturated: at least {self.threshold:.0%} of their outputs sat at "
            f"the flat ends of the curve for {self.patience} collections in a row, since step {{since}} (worst: "
            "{worst}, {value} saturated)",
            "the inputs of these activations are too large: normalise the inputs, initialise with Xavier/Glorot "
            "initialisation, add normalisation before the activation, lower the learning rate, or use ReLU-family activations",
            percent=True, threshold=self.threshold)


class PoorWeightInitialization(Rule):
    """At the first collection (before any update), a linear or convolution weight is constant, or its
    standard deviation is more than ``factor`` times away from ``1/sqrt(fan_in)``, the scale that
    keeps activations from growing or shrinking layer after layer.

    :param factor: allowed ratio between the weight's standard deviation and ``1/sqrt(fan_in)``, either way.
    """

    needs = ("weights",)

    def __init__(self, *, factor: float = 10.0, action: str = "report") -> None:
        super().__init__(action=action)
        self.factor = factor

    def start(self, info: Mapping[str, Any]) -> list[Finding]:
        self.shapes = info.get("params") or {}
        self.first = True
        return []

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        if not getattr(self, "first", False) or record["step"] != 1 or "weights" not in record:
            return []  # judged on the weights of step 1, read before the first update
        self.first = False
        ratios, constant = {}, []
        for name, s in (record.get("weights") or {}).items():
            meta = self.shapes.get(name) or {}
            shape, module = meta.get("shape") or [], str(meta.get("module", ""))
            if len(shape) < 2 or not (module.startswith(("Linear", "Conv")) or module.endswith("Linear")):
                continue
            fan_in = math.prod(shape[1:])
            std = s.get("std")
            if std is None or not math.isfinite(std):
                continue
            if std == 0:
                constant.append(name)
                continue
            ratio = std * math.sqrt(fan_in)
            if ratio > self.factor or ratio < 1 / self.factor:
                ratios[name] = round(ratio, 4)
        if not ratios and not constant:
            return []
        parts = []
        if constant:
            parts.append(f"{names(constant)} start with all weights equal, so their units all learn the same thing")
        if ratios:
            worst = max(ratios, key=lambda n: abs(math.log(ratios[n])))
            parts.append(f"{names(list(ratios))} start with weights {fmt(ratios[worst])} times the scale 1/sqrt(fan_in) "
                         f"(worst: {worst})")
        return self.finding("init", record["step"], "; ".join(parts),
                            "initialise linear and convolution weights with He (kaiming) initialisation for ReLU "
                            "networks or Xavier/Glorot for tanh/sigmoid ones (torch.nn.init), never with constants",
                            {"std_times_sqrt_fan_in": ratios, "constant": constant, "factor": self.factor})


class WeightUpdateRatio(_Streak):
    """The size of one step's update relative to the weight, ``||w_after - w_before|| / ||w_before||``,
    of a linear or convolution weight stays above ``high`` or below ``low`` for ``patience``
    collections in a row. Around 1e-3 is usual.

    :param low: ratio under which weights barely move (learning rate too low, or frozen by mistake).
    :param high: ratio above which each step rewrites much of the weight (learning rate too high).
    :param patience: collections in a row before a finding.
    """

    needs = ("weights", "updates")

    def __init__(self, *, low: float = 1e-6, high: float = 0.1, patience: int = 3, action: str = "report") -> None:
        super().__init__(action=action)
        self.low, self.high, self.patience = low, high, patience

    def start(self, info: Mapping[str, Any]) -> list[Finding]:
        self.shapes = info.get("params") or {}
        return []

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        shapes = getattr(self, "shapes", {})
        values = {n: r for n, r in (record.get("updates") or {}).items()
                  if r is not None and math.isfinite(r) and len((shapes.get(n) or {}).get("shape") or [0, 0]) >= 2}
        high = self._update(record["step"], {n: v for n, v in values.items() if v > self.high}, values, self.patience)
        low = [n for n in self._update_low(record["step"], values) if n not in high]
        found = self._group(
            record["step"], high, values,
            f"each step changes the weights of {{layers}} by more than {fmt(self.high)} of their size, for "
            f"{self.patience} collections in a row since step {{since}} (largest: {{worst}} at {{value}})",
            "lower the learning rate (or add warm-up): updates this large make training unstable",
            high=self.high)
        found += self._group(
            record["step"], low, values,
            f"each step changes the weights of {{layers}} by less than {fmt(self.low)} of their size, for "
            f"{self.patience} collections in a row since step {{since}} (smallest: {{worst}} at {{value}})",
            "these weights barely move: raise the learning rate, check the schedule has not decayed it to nothing, "
            "and check no layer is frozen or gated by a zero by mistake",
            since_map=self.low_rule.since, lowest=True, low=self.low)
        return found

    def _update_low(self, step: int, values: Mapping[str, float]) -> list[str]:
        if not hasattr(self, "low_rule"):
            self.low_rule = _Streak(action=self.action)
            self.low_rule._reported = self._reported
        return self.low_rule._update(step, {n: v for n, v in values.items() if v < self.low}, values, self.patience)
