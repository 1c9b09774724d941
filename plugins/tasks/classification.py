"""Image classification: ``(images [B, C, H, W], labels [B])`` batches, logits out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bestiary.extend import ConfigError, DataError, Metric, Task


class ImageClassification(Task):
    name = "image-classification"
    default_metrics = ("accuracy",)
    monitor = "accuracy"
    mode = "max"

    report_metrics = ("confusion_matrix",)

    def model_kwargs(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """``num_classes``, ``in_chans`` and ``img_size`` (from ``input_size`` ``[C, H, W]``)."""
        kwargs = {k: info[k] for k in ("num_classes", "in_chans") if k in info}
        size = info.get("input_size")
        if size and len(size) == 3:
            kwargs["img_size"] = size[1] if size[1] == size[2] else [size[1], size[2]]
        return kwargs

    def batch_size(self, batch: Any) -> int:
        return int(batch[0].shape[0])

    def split_batch(self, batch: Any, n: int) -> list[Any]:
        """``(images, labels)`` cut into ``n`` along the samples; labels may be indices ``[B]`` or
        class probabilities ``[B, C]`` (mixup), cut the same way."""
        images, labels = batch[0], batch[1]
        if not 1 <= n <= images.shape[0]:
            raise ConfigError(f"cannot cut a batch of {images.shape[0]} images into {n} micro-batches; "
                             f"choose between 1 and {images.shape[0]} (strategy_options.n_microbatches)")
        return list(zip(images.tensor_split(n), labels.tensor_split(n)))

    def write_report(self, results: Mapping[str, Any], info: Mapping[str, Any], directory: Path) -> list[Path]:
        return write_classification_report(results, info, directory)

    def loss(self, model: torch.nn.Module, batch: Any, *, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Any]:
        images, labels = batch[0], batch[1]
        logits = model(images)
        # labels are class indices, or class probabilities [B, C] after mixup/cutmix
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
        """Images from a ``.npy``/``.npz`` array ``[N, C, H, W]`` (or ``[N, H, W]``), taken as ready
        for the model, or image files, resized to the dataset's input size, scaled to [0, 1] and
        normalised with the ``mean``/``std`` the dataset records in its info."""
        import numpy as np

        p = Path(path)
        shape = tuple(info.get("input_size") or ())
        if p.suffix in (".npy", ".npz"):
            arr = np.load(p, allow_pickle=False)
            if isinstance(arr, np.lib.npyio.NpzFile):
                arr = arr[arr.files[0]]
            x = torch.as_tensor(_real_finite(arr, path), dtype=torch.float32)
            if x.dim() == 3:
                x = x.unsqueeze(1)
            if x.dim() != 4:
                raise DataError(f"{path}: expected an array of shape [N, C, H, W] or [N, H, W], got {list(x.shape)}")
            if len(shape) == 3 and x.shape[1] != shape[0]:
                raise DataError(f"{path}: the model takes {shape[0]} channel(s) per image, the array has {x.shape[1]} "
                                f"(shape {list(x.shape)}); give images of shape [N, {shape[0]}, H, W]")
            if len(shape) == 3 and tuple(x.shape[2:]) != tuple(shape[1:]):
                raise DataError(f"{path}: the images are {x.shape[2]}x{x.shape[3]}, the model was trained on "
                                f"{shape[1]}x{shape[2]}; resize them as the dataset does (docs/training.md, "
                                "'Building an input file'), or pass image files, which predict resizes")
            _check_range(x, info, path)
            return x
        files = sorted(f for f in (p.iterdir() if p.is_dir() else [p]) if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        if not files:
            raise DataError(f"{path}: no .npy/.npz array and no image files (.png, .jpg, .bmp) found")
        from PIL import Image

        c, h, w = shape if len(shape) == 3 else (3, 224, 224)
        images = []
        for f in files:
            img = Image.open(f).convert("L" if c == 1 else "RGB").resize((w, h))
            arr = np.asarray(img, dtype=np.float32) / 255.0
            images.append(torch.from_numpy(arr).reshape(h, w, c).permute(2, 0, 1))
        x = torch.stack(images)
        if "mean" in info and "std" in info:  # the dataset's normalisation, recorded in its info
            x = (x - torch.tensor(info["mean"]).view(1, -1, 1, 1)) / torch.tensor(info["std"]).view(1, -1, 1, 1)
        return x


def _check_range(x: torch.Tensor, info: Mapping[str, Any], path: str) -> None:
    """Refuse arrays far outside the values the model was trained on. A dataset that records the
    ``mean`` and ``std`` it normalised ``[0, 1]`` images with trained on values between
    ``(0 - mean) / std`` and ``(1 - mean) / std``; raw pixels (0-255, or 0-16 for digits) are far
    outside and would give confident nonsense."""
    if "mean" not in info or "std" not in info:
        return
    mean, std = torch.tensor(info["mean"], dtype=torch.float64), torch.tensor(info["std"], dtype=torch.float64)
    low, high = float(((0 - mean) / std).min()), float(((1 - mean) / std).max())
    slack = 0.25 * (high - low)  # resizing and rounding overshoot a little
    lo, hi = float(x.min()), float(x.max())
    if lo < low - slack or hi > high + slack:
        stats = ", ".join(f"{m:.4g}" for m in info["mean"]), ", ".join(f"{s:.4g}" for s in info["std"])
        raise DataError(f"{path}: values span [{lo:.4g}, {hi:.4g}], but the model was trained on images scaled to "
                        f"[0, 1] and normalised with mean [{stats[0]}] and std [{stats[1]}], which span "
                        f"[{low:.3g}, {high:.3g}]; give (pixels / max_pixel - mean) / std (docs/training.md, "
                        "'Building an input file'), or pass image files")


def _real_finite(arr: Any, path: str) -> Any:
    """``arr`` when it holds real, finite numbers; a :class:`DataError` naming the file and the first
    offending element otherwise (NaN or complex inputs would give NaN or silently wrong predictions)."""
    import numpy as np

    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{path}: the array holds {arr.dtype} values; give real numbers (float or int)")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        raise DataError(f"{path}: element {list(where)} is {arr[where]}; every input value must be a finite number "
                        f"({len(bad)} are not)")
    return arr


def per_class(matrix: list[list[float]]) -> list[dict[str, float]]:
    """Precision, recall, F1 and support of each class from a confusion matrix (rows: truth)."""
    rows = []
    n = len(matrix)
    for c in range(n):
        tp = matrix[c][c]
        predicted = sum(matrix[r][c] for r in range(n))
        support = sum(matrix[c])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"precision": precision, "recall": recall, "f1": f1, "support": int(support)})
    return rows


def write_classification_report(results: Mapping[str, Any], info: Mapping[str, Any], directory: Path) -> list[Path]:
    """``per_class.csv``, ``report.md`` and ``confusion_matrix.png`` from the confusion matrix."""
    matrix = results.get("confusion_matrix")
    if not matrix:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    classes = [str(c) for c in (info.get("classes") or range(len(matrix)))]
    rows = per_class(matrix)
    csv_path = directory / "per_class.csv"
    with open(csv_path, "w") as f:
        f.write("class,precision,recall,f1,support\n")
        for name, r in zip(classes, rows):
            f.write(f"{name},{r['precision']:.6f},{r['recall']:.6f},{r['f1']:.6f},{r['support']}\n")
    md_path = directory / "report.md"
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | {r['support']} |" for name, r in zip(classes, rows)]
    scalars = {k: v for k, v in results.items() if isinstance(v, float)}
    lines += ["", *[f"- {k}: {v:.6g}" for k, v in scalars.items()]]
    md_path.write_text("\n".join(lines) + "\n")
    png_path = directory / "confusion_matrix.png"
    _plot_confusion(matrix, classes, png_path)
    return [csv_path, md_path, png_path]


def _plot_confusion(matrix: list[list[float]], classes: list[str], path: Path) -> None:
    # matplotlib only when a report is written; the Agg canvas needs no display
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(matrix)
    size = max(4.0, 0.45 * n + 2)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), classes, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix")
    if n <= 20:
        peak = max(max(r) for r in matrix) or 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(matrix[i][j])), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i][j] > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


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
