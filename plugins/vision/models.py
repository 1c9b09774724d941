"""Building timm models for bestiary: the ResNet and ViT entries and any ``timm:<name>``.

Pretrained weights come only from local files (``--weights PATH``, loaded by the engine); asking
timm for hub weights is refused with the remedy, since nothing may be downloaded at run time.
"""

from __future__ import annotations

from typing import Any

import torch  # builds models; only runs and conformance checks import this module

from bestiary.extend import ConfigError

#: A ViT on small images keeps at least this many patches per side unless patch_size is given.
MIN_GRID = 8


def vit_patch_size(default_patch: int, img_size: int | list[int] | None) -> int:
    """The patch size for ``img_size``: timm's default unless the image is too small for it.

    For images smaller than ``MIN_GRID * default_patch`` the patch shrinks to keep an 8x8 grid
    (32x32 images get 4x4 patches), so a ViT can train on small images without extra flags.
    """
    if img_size is None:
        return default_patch
    side = min(img_size) if isinstance(img_size, (list, tuple)) else int(img_size)
    if side >= MIN_GRID * default_patch:
        return default_patch
    return max(1, side // MIN_GRID)


def create(
    timm_name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    img_size: int | list[int] | None = None,
    patch_size: int | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float | None = None,
    pretrained: bool = False,
    **timm_kwargs: Any,
) -> torch.nn.Module:
    """Build the timm model ``timm_name`` with fresh weights.

    :param num_classes: classifier outputs.
    :param in_chans: input channels (1 for grey images).
    :param img_size: input side (or ``[H, W]``); used by ViTs, ignored by convolutional models.
    :param patch_size: ViT patch size; default: see :func:`vit_patch_size`.
    :param drop_rate: dropout before the classifier.
    :param drop_path_rate: stochastic depth rate, where the model supports it.
    :param pretrained: must stay false: hub weights are not available offline.
    :param timm_kwargs: any other argument of the timm model's constructor.
    """
    import timm  # only when building

    if pretrained:
        raise ConfigError(
            f"pretrained weights for {timm_name!r} would come from the model hub, which bestiary never "
            "downloads from; pass a local file instead: `bestiary train ... --weights PATH` "
            "(a .safetensors file or a timm/torch checkpoint)"
        )
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate, **timm_kwargs}
    if drop_path_rate is not None:
        kwargs["drop_path_rate"] = drop_path_rate
    if timm_name.startswith(("vit_", "deit_")):
        default_patch = _patch_from_name(timm_name)
        if img_size is not None:
            kwargs["img_size"] = img_size
        kwargs["patch_size"] = patch_size or vit_patch_size(default_patch, img_size)
    elif patch_size is not None:
        raise ConfigError(f"{timm_name!r} has no patches; drop patch_size")
    return timm.create_model(timm_name, pretrained=False, **kwargs)


def _patch_from_name(timm_name: str) -> int:
    for part in timm_name.split("_"):
        if part.startswith("patch") and part[5:].isdigit():
            return int(part[5:])
    return 16
