"""Image transforms and batch-level augmentation (mixup, cutmix) for the vision datasets.

Every random choice draws from torch's or Python's global generators, which checkpoints capture,
so runs with augmentation still resume exactly (with ``num_workers=0``).
"""

from __future__ import annotations

from typing import Any

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def folder_transform(img_size: int, *, training: bool, augment: bool = True, hflip: float = 0.5,
                     randaugment: str | None = None, mean: tuple[float, ...] = IMAGENET_MEAN,
                     std: tuple[float, ...] = IMAGENET_STD) -> Any:
    """timm's standard transforms for photos: random-resized crop, flip and optional RandAugment
    (for example ``"rand-m9-mstd0.5"``) in training; resize and centre crop for evaluation."""
    from timm.data import create_transform  # timm's data utilities, only when data is built

    if training and augment:
        return create_transform(img_size, is_training=True, hflip=hflip, auto_augment=randaugment,
                                interpolation="bilinear", mean=mean, std=std)
    return create_transform(img_size, is_training=False, interpolation="bilinear", mean=mean, std=std,
                            crop_pct=1.0 if not training else 0.875)


def small_transform(img_size: int, *, training: bool, augment: bool = True, hflip: float = 0.5,
                    randaugment: str | None = None, mean: tuple[float, ...] = (0.5,), std: tuple[float, ...] = (0.5,),
                    padding: int = 4) -> Any:
    """The usual transforms for small images (CIFAR): padded random crop and flip in training."""
    from torchvision import transforms as T  # installed with timm

    steps: list[Any] = []
    if training and augment:
        steps += [T.RandomCrop(img_size, padding=padding, padding_mode="reflect")]
        if hflip:
            steps.append(T.RandomHorizontalFlip(hflip))
        if randaugment:
            from timm.data.auto_augment import rand_augment_transform

            steps.append(rand_augment_transform(randaugment, {"translate_const": int(img_size * 0.45)}))
    else:
        steps.append(T.Resize(img_size))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


class RandomShift:
    """Shift a tensor image ``[C, H, W]`` by up to ``pixels`` in each direction, filling with ``fill``."""

    def __init__(self, pixels: int, fill: float = 0.0) -> None:
        self.pixels, self.fill = pixels, fill

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.pixels <= 0:
            return image
        dx, dy = (int(v) for v in torch.randint(-self.pixels, self.pixels + 1, (2,)))
        padded = torch.nn.functional.pad(image, [self.pixels] * 4, value=self.fill)
        h, w = image.shape[-2:]
        return padded[..., self.pixels + dy : self.pixels + dy + h, self.pixels + dx : self.pixels + dx + w]


class MixupCollate:
    """Collate, then mix the batch with timm's Mixup/CutMix: labels become probabilities ``[B, C]``.

    Odd-sized batches (the last one of an epoch) are passed through with one-hot labels, since
    timm mixes pairs within the batch.
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0) -> None:
        from timm.data import Mixup

        self.num_classes = num_classes
        self.mix = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=0.0, num_classes=num_classes)

    def __call__(self, samples: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = torch.utils.data.default_collate(samples)
        if images.shape[0] % 2:
            return images, torch.nn.functional.one_hot(labels, self.num_classes).float()
        return self.mix(images, labels)
