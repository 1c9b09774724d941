"""The ``deepar`` architecture: gluonts' ``DeepARModel`` behind the forecasting batch contract.

The network, its lags, scaling and distribution head are gluonts' own; what this module adds is
the mapping from bestiary batches to the network's inputs, the training loss gluonts' lightning
module uses (the mean negative log-likelihood over context and horizon), and forecasts from
sample paths: mean, and quantiles at :data:`QUANTILE_LEVELS`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch  # builds a torch network; only runs import this module

from bestiary.extend import ConfigError, DataError

from ..layers import left_pad

# gluonts' own noise, not the user's concern: its JSON module suggests faster libraries on import,
# and its lag indexing uses a list index that torch deprecates (same result on every supported torch).
warnings.filterwarnings("ignore", message="Using `json`-module", module=r"gluonts\.json")
warnings.filterwarnings("ignore", message="Using a non-tuple sequence", module=r"gluonts\.torch\.util")

#: Quantile levels the probabilistic forecasters report (the Evaluator's nine, and the 95 % interval).
QUANTILE_LEVELS = (0.025, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.975)

DISTRIBUTIONS = ("student_t", "normal", "negative_binomial")


def distribution_output(name: str) -> Any:
    # gluonts' distribution heads: imported only when a DeepAR model is built
    from gluonts.torch.distributions import NegativeBinomialOutput, NormalOutput, StudentTOutput

    outputs = {"student_t": StudentTOutput, "normal": NormalOutput, "negative_binomial": NegativeBinomialOutput}
    if name not in outputs:
        raise ConfigError(f"unknown distribution {name!r}; choose one of {', '.join(DISTRIBUTIONS)} "
                         "(--set model.distribution=NAME)")
    return outputs[name]()


def time_features(batch: dict[str, torch.Tensor], key: str, steps: int, count: int) -> torch.Tensor:
    """The batch's time features ``[B, steps, count]``; zeros when it has none (a bare series)."""
    feat = batch.get(f"{key}_time_feat")
    b = batch["past_target"].shape[0]
    if feat is None or count == 0:
        return batch["past_target"].new_zeros((b, steps, count))
    if feat.shape[-1] != count:
        raise DataError(f"the batch has {feat.shape[-1]} time features but the model was built for {count}; "
                         "train and predict with data of the same frequency and covariates")
    return feat.float()


def sample_forecast(samples: torch.Tensor, levels: tuple[float, ...] = QUANTILE_LEVELS) -> dict[str, Any]:
    """Mean and quantiles ``[B, Q, H]`` of sample paths ``[B, S, H]``. The quantile at ``q`` is the
    sorted sample of rank ``round((S - 1) * q)``, as gluonts' ``SampleForecast`` takes it, so that
    metrics of these forecasts equal its ``Evaluator``'s."""
    ordered = samples.sort(dim=1).values
    s = samples.shape[1]
    ranks = torch.tensor([round((s - 1) * q) for q in levels], device=samples.device)
    return {"mean": samples.mean(1), "quantiles": ordered[:, ranks], "levels": list(levels)}


class DeepAR(torch.nn.Module):
    """gluonts' DeepAR network for one frequency and horizon.

    :param prediction_length: forecast horizon.
    :param freq: pandas frequency (sets the default lags).
    :param context_length: steps the RNN is unrolled over before forecasting (default: the horizon).
    :param num_time_features: calendar features, age and covariates per step in the batches.
    :param num_layers: LSTM layers.
    :param hidden_size: LSTM width.
    :param dropout_rate: dropout between LSTM layers.
    :param distribution: ``student_t``, ``normal`` or ``negative_binomial`` (counts).
    :param lags_seq: lags of the target fed at each step (default: gluonts' for ``freq``).
    :param scaling: divide each window by its mean absolute context value.
    :param num_parallel_samples: sample paths per forecast.
    :param sample_seed: seed of the sample paths in eval mode, so evaluations repeat exactly.
    """

    def __init__(self, prediction_length: int, freq: str = "D", context_length: int | None = None,
                 num_time_features: int = 0, num_layers: int = 2, hidden_size: int = 40, dropout_rate: float = 0.1,
                 distribution: str = "student_t", lags_seq: list[int] | None = None, scaling: bool = True,
                 num_parallel_samples: int = 100, sample_seed: int = 0, season_length: int | None = None) -> None:
        super().__init__()
        # the network is gluonts': imported only when a DeepAR model is built
        from gluonts.torch.model.deepar.module import DeepARModel

        self.num_time_features = int(num_time_features)
        self.sample_seed = sample_seed
        self.net = DeepARModel(
            freq=freq, context_length=int(context_length or prediction_length), prediction_length=prediction_length,
            num_feat_dynamic_real=max(1, self.num_time_features), num_feat_static_real=1, num_feat_static_cat=1,
            cardinality=[1], num_layers=num_layers, hidden_size=hidden_size, dropout_rate=dropout_rate,
            distr_output=distribution_output(distribution), lags_seq=lags_seq, scaling=scaling,
            num_parallel_samples=num_parallel_samples,
        )
        self.past_length = int(self.net._past_length)
        self.prediction_length = prediction_length

    def inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The network's inputs: the past cut or padded to ``past_length``, static features of 0."""
        past = batch["past_target"].float()
        b, p, h = past.shape[0], self.past_length, self.prediction_length
        observed = batch.get("past_observed", torch.ones_like(past)).float()
        count = max(1, self.num_time_features)
        return {
            "feat_static_cat": torch.zeros(b, 1, dtype=torch.long, device=past.device),
            "feat_static_real": past.new_zeros(b, 1),
            "past_time_feat": left_pad(time_features(batch, "past", past.shape[1], count), p),
            "past_target": left_pad(past, p),
            "past_observed_values": left_pad(observed, p),
            "future_time_feat": time_features(batch, "future", h, count),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        inputs = self.inputs(batch)
        out: dict[str, Any] = {}
        if "future_target" in batch:
            target = batch["future_target"].float()
            observed = batch.get("future_observed", torch.ones_like(target)).float()
            out["loss"] = self.net.loss(**inputs, future_target=target, future_observed_values=observed).mean()
        if not self.training:
            device = inputs["past_target"].device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(self.sample_seed)
                samples = self.net(**inputs)
            out.update(sample_forecast(samples))
        return out
