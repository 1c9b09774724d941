"""Image classification: ``(images [B, C, H, W], labels [B])`` batches, logits out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bestiary.engine.metrics import Metric
from bestiary.engine.tasks import Task


class ImageClassification(Task):
    name = "image-classification"
    default_metrics = ("accuracy",)
    monitor = "accuracy"
    mode = "max"

    def model_kwargs(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {k: info[k] for k in ("num_classes", "in_chans") if k in info}

    def batch_size(self, batch: Any) -> int:
        return int(batch[0].shape[0])

    def loss(self, model: torch.nn.Module, batch: Any, *, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Any]:
        images, labels = batch[0], batch[1]
        logits = model(images)
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing), logits

    def predict(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return model(images).float().softmax(-1)

    def sample_batch(self, info: Mapping[str, Any], batch_size: int = 2) -> Any:
        shape = info.get("input_size") or (info.get("in_chans", 3), 32, 32)
        return torch.randn(batch_size, *shape), torch.randint(0, int(info.get("num_classes", 2)), (batch_size,))

    def format_predictions(self, predictions: torch.Tensor, info: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        classes = list((info or {}).get("classes") or [])
        rows = []
        k = min(5, predictions.shape[-1])
        top_p, top_i = predictions.topk(k, dim=-1)
        for i, (p, idx) in enumerate(zip(top_p.tolist(), top_i.tolist())):
            names = [classes[j] if j < len(classes) else j for j in idx]
            rows.append({"index": i, "label": names[0], "probability": p[0],
                         "top": [{"label": n, "probability": q} for n, q in zip(names, p)]})
        return rows

    def load_inputs(self, path: str, info: Mapping[str, Any]) -> torch.Tensor:
        """Images from a ``.npy``/``.npz`` array ``[N, C, H, W]`` (or ``[N, H, W]``) or image files."""
        import numpy as np

        p = Path(path)
        shape = tuple(info.get("input_size") or ())
        if p.suffix in (".npy", ".npz"):
            arr = np.load(p, allow_pickle=False)
            if isinstance(arr, np.lib.npyio.NpzFile):
                arr = arr[arr.files[0]]
            x = torch.as_tensor(arr, dtype=torch.float32)
            if x.dim() == 3:
                x = x.unsqueeze(1)
            if x.dim() != 4:
                raise ValueError(f"{path}: expected an array of shape [N, C, H, W] or [N, H, W], got {list(x.shape)}")
            return x
        files = sorted(f for f in (p.iterdir() if p.is_dir() else [p]) if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        if not files:
            raise ValueError(f"{path}: no .npy/.npz array and no image files (.png, .jpg, .bmp) found")
        from PIL import Image

        c, h, w = shape if len(shape) == 3 else (3, 224, 224)
        images = []
        for f in files:
            img = Image.open(f).convert("L" if c == 1 else "RGB").resize((w, h))
            arr = np.asarray(img, dtype=np.float32) / 255.0
            images.append(torch.from_numpy(arr).reshape(h, w, c).permute(2, 0, 1))
        return torch.stack(images)


class Accuracy(Metric):
    """Fraction of samples whose highest logit is the label."""

    size = 2
    higher_is_better = True

    def stats(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
        labels = batch[1]
        correct = (outputs.argmax(-1) == labels).sum()
        return torch.stack([correct.double(), torch.tensor(float(labels.numel()), dtype=torch.float64, device=labels.device)])

    def value(self, total: torch.Tensor) -> float:
        return float(total[0] / total[1]) if total[1] else float("nan")
