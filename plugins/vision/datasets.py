"""Image datasets: digits, image folders, CIFAR files, synthetic images. Nothing is downloaded."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bestiary.extend import ConfigError, Data, DataError

from .transforms import IMAGENET_MEAN, IMAGENET_STD, MixupCollate, RandomShift, folder_transform, small_transform

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ImageList(torch.utils.data.Dataset):
    """``(image, label)`` pairs from a list of sources, each loaded and transformed on access."""

    def __init__(self, items: list[tuple[Any, int]], load: Callable[[Any], Any], transform: Callable[[Any], Any]) -> None:
        self.items, self.load, self.transform = items, load, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        source, label = self.items[i]
        return self.transform(self.load(source)), label


def _collates(num_classes: int, mixup: float, cutmix: float) -> Any:
    return MixupCollate(num_classes, mixup, cutmix) if (mixup or cutmix) else None


def _stratified(labels: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / validation / test, stratified by label, fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    val_fraction, test_fraction = fractions
    rest, test = train_test_split(index, test_size=test_fraction, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), stratify=labels[rest],
                                  random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


# -- digits -----------------------------------------------------------------------------------


def _whole(dataset: str, **values: object) -> None:
    """Refuse sizes and counts below 1 here, with the option to fix, instead of a torch error later."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{dataset}: data.{name} must be a whole number of at least 1, got {value!r}; "
                              f"set it with --set data.{name}=N")


def digits(img_size: int = 32, augment: bool = True, shift: int = 2, mixup: float = 0.0, cutmix: float = 0.0) -> Data:
    """The 8x8 handwritten digits scikit-learn ships (1,797 grey images, 10 classes).

    Split, fixed: stratified with ``random_state=0``, 20 % test (360), 10 % validation (180),
    the rest training (1,257). Pixels (0-16) are scaled to [0, 1], resized to ``img_size``
    (bilinear) and normalised with the training mean and standard deviation. Training images are
    shifted by up to ``shift`` pixels (at 32x32) when ``augment``; digits are never flipped.
    """
    _whole("digits", img_size=img_size)
    from sklearn.datasets import load_digits

    raw = load_digits()
    labels = raw.target.astype(np.int64)
    images = torch.from_numpy(raw.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = torch.nn.functional.interpolate(images, size=(img_size, img_size), mode="bilinear", align_corners=False)
    train, val, test = _stratified(labels, (0.1, 0.2), seed=0)
    mean, std = float(images[train].mean()), float(images[train].std())
    images = (images - mean) / std
    y = torch.from_numpy(labels)
    shifter = RandomShift(round(shift * img_size / 32), fill=(0.0 - mean) / std) if augment else None

    def split(idx: np.ndarray, training: bool) -> torch.utils.data.Dataset:
        items = [(i, int(labels[i])) for i in idx]
        transform = shifter if (training and shifter) else (lambda x: x)
        return ImageList(items, images.__getitem__, transform)

    del y
    return Data(
        train=split(train, True),
        validation=split(val, False),
        test=split(test, False),
        info={"num_classes": 10, "in_chans": 1, "input_size": [1, img_size, img_size],
              "classes": [str(c) for c in range(10)], "mean": [mean], "std": [std]},
        train_collate=_collates(10, mixup, cutmix),
    )


# -- image folders ----------------------------------------------------------------------------


def _scan(root: Path, classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    discovered = classes is None  # the training classes; a validation or test folder may hold fewer
    if classes is None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders: put the images of each class in a subfolder named after it")
    items = []
    for label, name in enumerate(classes):
        folder = root / name
        if folder.is_dir():
            items += [(f, label) for f in sorted(folder.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise DataError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    counts = np.bincount([label for _, label in items], minlength=len(classes))
    found = [f"{name} ({int(n)} images)" for name, n in zip(classes, counts, strict=True) if n]
    if discovered and len(found) < 2:
        raise DataError(f"{root}: image_folder needs images of at least two classes, found {', '.join(found)}; "
                        "a classifier of one class learns nothing: add a folder of images for each other class")
    return items, classes


def _open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def image_folder(path: str | None = None, img_size: int = 224, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 seed: int = 0, augment: bool = True, hflip: float = 0.5, randaugment: str | None = None,
                 mixup: float = 0.0, cutmix: float = 0.0) -> Data:
    """Images in one folder per class, at ``path`` (``--set data.path=DIR``).

    With ``train/`` and ``val/`` (or ``validation/``, and optionally ``test/``) subfolders those are
    the splits; otherwise one class tree is split, stratified by class and fixed by ``seed``.
    """
    _whole("image_folder", img_size=img_size)
    if not path:
        raise ConfigError("image_folder needs the folder of images: --set data.path=/path/to/images")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"image_folder: {root} is not a folder; pass the folder of class folders with --set data.path=DIR")
    split_dirs = {name: root / name for name in ("train", "val", "validation", "test") if (root / name).is_dir()}
    if "train" in split_dirs:
        train_items, classes = _scan(split_dirs["train"])
        val_dir = split_dirs.get("val") or split_dirs.get("validation")
        val_items = _scan(val_dir, classes)[0] if val_dir else []
        test_items = _scan(split_dirs["test"], classes)[0] if "test" in split_dirs else []
    else:
        items, classes = _scan(root)
        labels = np.array([label for _, label in items])
        if min(np.bincount(labels)) < 3:
            raise DataError(f"{root}: every class needs at least 3 images to be split into train/validation/test")
        train, val, test = _stratified(labels, (val_fraction, test_fraction), seed)
        train_items, val_items, test_items = ([items[i] for i in idx] for idx in (train, val, test))
    train_t = folder_transform(img_size, training=True, augment=augment, hflip=hflip, randaugment=randaugment)
    eval_t = folder_transform(img_size, training=False)
    return Data(
        train=ImageList(train_items, _open_rgb, train_t),
        validation=ImageList(val_items, _open_rgb, eval_t) if val_items else None,
        test=ImageList(test_items, _open_rgb, eval_t) if test_items else None,
        info={"num_classes": len(classes), "in_chans": 3, "input_size": [3, img_size, img_size], "classes": classes,
              "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        train_collate=_collates(len(classes), mixup, cutmix),
    )


# -- CIFAR files ------------------------------------------------------------------------------


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's python batches, refusing anything but plain containers and numpy arrays."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR batches hold only arrays and lists")


class NotCifarError(ConfigError, pickle.UnpicklingError):
    """A file that is not a CIFAR python batch: a configuration error that is still the
    ``UnpicklingError`` it always was."""


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = _ArraysOnly(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:  # the unpickler's error names no file
        raise NotCifarError(f"{path}: not a CIFAR batch file ({exc}); pass the files of the CIFAR python "
                          "distribution unchanged") from exc
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _records(file: Path, size: int) -> np.ndarray:
    """The fixed-size records of a binary CIFAR file: ``[N, size]`` bytes."""
    raw = np.fromfile(file, dtype=np.uint8)
    if raw.size % size:
        raise ConfigError(f"{file}: {raw.size} bytes is not a whole number of {size}-byte CIFAR records; "
                          "the file is truncated or not a CIFAR binary batch")
    return raw.reshape(-1, size)


def _find_cifar(root: Path) -> Path:
    markers = ("data_batch_1", "data_batch_1.bin", "train", "train.bin")
    for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        if any((folder / m).is_file() for m in markers):
            return folder
    raise DataError(
        f"no CIFAR files under {root}: expected the python batches (data_batch_1..5 and test_batch, or train and "
        "test for CIFAR-100) or the binary ones (data_batch_1.bin.., test_batch.bin, or train.bin and test.bin)"
    )


def _read_cifar(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(train_x, train_y, test_x, test_y, classes)`` with images as uint8 ``[N, 32, 32, 3]``."""
    def hwc(flat: np.ndarray) -> np.ndarray:
        return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    if (folder / "data_batch_1").is_file():  # CIFAR-10, python
        parts = [_load_pickle(folder / f"data_batch_{i}") for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
        test = _load_pickle(folder / "test_batch")
        meta = _load_pickle(folder / "batches.meta") if (folder / "batches.meta").is_file() else {}
        classes = [c.decode() if isinstance(c, bytes) else c for c in meta.get("label_names", [])] or [str(i) for i in range(10)]
        x = np.concatenate([np.asarray(p["data"], dtype=np.uint8) for p in parts])
        y = np.concatenate([np.asarray(p["labels"]) for p in parts])
        return hwc(x), y, hwc(np.asarray(test["data"], dtype=np.uint8)), np.asarray(test["labels"]), classes
    if (folder / "train").is_file() and not (folder / "train").suffix:  # CIFAR-100, python
        train, test = _load_pickle(folder / "train"), _load_pickle(folder / "test")
        meta = _load_pickle(folder / "meta") if (folder / "meta").is_file() else {}
        classes = [c.decode() if isinstance(c, bytes) else c for c in meta.get("fine_label_names", [])] or [str(i) for i in range(100)]
        return (hwc(np.asarray(train["data"], dtype=np.uint8)), np.asarray(train["fine_labels"]),
                hwc(np.asarray(test["data"], dtype=np.uint8)), np.asarray(test["fine_labels"]), classes)
    if (folder / "data_batch_1.bin").is_file():  # CIFAR-10, binary: label byte + 3072 pixels
        def read10(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
            rows = np.concatenate([_records(f, 3073) for f in files])
            return hwc(rows[:, 1:]), rows[:, 0].astype(np.int64)
        train_x, train_y = read10([folder / f"data_batch_{i}.bin" for i in range(1, 6) if (folder / f"data_batch_{i}.bin").is_file()])
        test_x, test_y = read10([folder / "test_batch.bin"])
        names = folder / "batches.meta.txt"
        classes = [c for c in names.read_text().split() if c] if names.is_file() else [str(i) for i in range(10)]
        return train_x, train_y, test_x, test_y, classes
    # CIFAR-100, binary: coarse byte, fine byte + 3072 pixels
    def read100(file: Path) -> tuple[np.ndarray, np.ndarray]:
        rows = _records(file, 3074)
        return hwc(rows[:, 2:]), rows[:, 1].astype(np.int64)
    train_x, train_y = read100(folder / "train.bin")
    test_x, test_y = read100(folder / "test.bin")
    names = folder / "fine_label_names.txt"
    classes = [c for c in names.read_text().split() if c] if names.is_file() else [str(i) for i in range(100)]
    return train_x, train_y, test_x, test_y, classes


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def cifar_files(path: str | None = None, img_size: int = 32, val_fraction: float = 0.1, augment: bool = True,
                hflip: float = 0.5, randaugment: str | None = None, mixup: float = 0.0, cutmix: float = 0.0) -> Data:
    """CIFAR-10 or CIFAR-100 from the files at ``path`` (``--set data.path=DIR``), python or binary
    format. The last ``val_fraction`` of the training files is the validation split; the test
    batch is the test split."""
    _whole("cifar_files", img_size=img_size)
    if not path:
        raise ConfigError("cifar_files needs the folder of the CIFAR batch files: --set data.path=/path/to/cifar-10-batches-py")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"cifar_files: {root} is not a folder; pass the folder of the batch files with --set data.path=DIR")
    train_x, train_y, test_x, test_y, classes = _read_cifar(_find_cifar(root))
    n_val = round(len(train_x) * val_fraction)
    cut = len(train_x) - n_val
    from PIL import Image

    load = Image.fromarray
    train_t = small_transform(img_size, training=True, augment=augment, hflip=hflip, randaugment=randaugment,
                              mean=CIFAR_MEAN, std=CIFAR_STD)
    eval_t = small_transform(img_size, training=False, mean=CIFAR_MEAN, std=CIFAR_STD)

    def items(x: np.ndarray, y: np.ndarray) -> list[tuple[Any, int]]:
        return [(x[i], int(y[i])) for i in range(len(x))]

    return Data(
        train=ImageList(items(train_x[:cut], train_y[:cut]), load, train_t),
        validation=ImageList(items(train_x[cut:], train_y[cut:]), load, eval_t) if n_val else None,
        test=ImageList(items(test_x, test_y), load, eval_t),
        info={"num_classes": len(classes), "in_chans": 3, "input_size": [3, img_size, img_size], "classes": classes,
              "mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)},
        train_collate=_collates(len(classes), mixup, cutmix),
    )


# -- synthetic images -------------------------------------------------------------------------


class SyntheticImages(torch.utils.data.Dataset):
    """Image ``i`` is its class prototype plus noise, both drawn from generators seeded by
    ``(seed, i)``: any size and count, no memory held, the same images on every run."""

    def __init__(self, indices: range, num_classes: int, shape: tuple[int, int, int], seed: int, noise: float) -> None:
        self.indices, self.num_classes, self.shape, self.seed, self.noise = indices, num_classes, shape, seed, noise
        g = torch.Generator().manual_seed(seed)
        self.prototypes = torch.randn(num_classes, *shape, generator=g)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        index = self.indices[i]
        label = index % self.num_classes
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index + 1)
        return self.prototypes[label] + self.noise * torch.randn(*self.shape, generator=g), label


def synthetic_images(n: int = 1024, num_classes: int = 10, img_size: int = 32, channels: int = 3, seed: int = 0,
                     noise: float = 1.0) -> Data:
    """``n`` deterministic images (80 % train, 10 % validation, 10 % test) of ``num_classes``
    classes; ``noise`` sets how hard they are to tell apart."""
    _whole("synthetic_images", n=n, num_classes=num_classes, img_size=img_size, channels=channels)
    shape = (channels, img_size, img_size)
    a, b = int(n * 0.8), int(n * 0.9)
    make = lambda r: SyntheticImages(r, num_classes, shape, seed, noise)  # noqa: E731
    return Data(
        train=make(range(a)),
        validation=make(range(a, b)),
        test=make(range(b, n)),
        info={"num_classes": num_classes, "in_chans": channels, "input_size": list(shape)},
    )
