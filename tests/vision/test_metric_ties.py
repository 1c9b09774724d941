"""Top-k accuracy breaks ties as scikit-learn does; macro ROC-AUC's one departure is as documented."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from bestiary.plugins.vision import metrics as vm

DOCS = Path(__file__).resolve().parents[2] / "docs" / "vision.md"


def top_k(k: int, logits: torch.Tensor, labels: torch.Tensor) -> float:
    metric = vm.TopKAccuracy(k)
    metric.update(logits, (None, labels))
    return metric.compute()


def test_a_tie_at_the_kth_score_follows_scikit_learn() -> None:
    logits, labels = torch.zeros(1, 6), torch.tensor([0])
    expected = skm.top_k_accuracy_score([0], np.zeros((1, 6)), k=5, labels=list(range(6)))
    assert expected == 0.0  # the higher indices rank first in a tie
    assert top_k(5, logits, labels) == expected
    assert top_k(5, logits, torch.tensor([1])) == 1.0 and top_k(1, logits, torch.tensor([5])) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_top_k_matches_scikit_learn_on_seeded_logits_full_of_ties(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    for c in (4, 6, 10):
        # Few distinct values, rounded to ``dtype``: ties at the k-th score in most rows.
        logits = (torch.randint(0, 4, (400, c), generator=g).float() / 3).to(dtype)
        labels = torch.randint(0, c, (400,), generator=g)
        scores = logits.double().numpy()
        for k in (1, 2, 3, 5):
            if k >= c:
                continue
            expected = skm.top_k_accuracy_score(labels.numpy(), scores, k=k, labels=list(range(c)))
            assert top_k(k, logits, labels) == pytest.approx(expected, abs=1e-12), (c, k)


def test_roc_auc_with_a_class_without_positives_is_the_documented_departure() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (50,), generator=g)  # class 2 never occurs
    probs = logits.softmax(-1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sk = skm.roc_auc_score(labels.numpy(), probs, multi_class="ovr", labels=[0, 1, 2])
        except ValueError:  # older scikit-learn refuses instead of giving NaN
            sk = math.nan
    assert math.isnan(sk)
    metric = vm.RocAuc()
    metric.update(logits, (None, labels))
    defined = [skm.roc_auc_score(labels.numpy() == c, probs[:, c]) for c in (0, 1)]
    assert metric.compute() == pytest.approx(sum(defined) / 2)
    text = " ".join(DOCS.read_text().split())
    assert "a class with no positive sample in the data has no one-vs-rest AUC" in text
