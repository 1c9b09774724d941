"""The vision plugin: timm entries and their figures, datasets, weights, reports."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bestiary
from bestiary.engine.config import RunConfig
from bestiary.engine.trainer import train
from bestiary.plugins.vision import CATALOG, datasets
from bestiary.plugins.vision.models import create, vit_patch_size


@pytest.fixture(autouse=True)
def builtin_host():
    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    yield host
    bestiary.reset_host()


def quiet(tmp_path: Path, **kw) -> RunConfig:
    base = {"dataset": "digits", "epochs": 1, "max_steps": 2, "batch_size": 16, "run_dir": str(tmp_path / "run"), "quiet": True}
    return RunConfig(**{**base, **kw})


@pytest.mark.parametrize("name,params_m", [("resnet50", 25.56), ("vit_base_patch16_224", 86.57)])
def test_parameter_counts_match_timms_published_figures(name, params_m):
    assert CATALOG[name]["params_m"] == params_m
    with torch.device("meta"):
        model = bestiary.build("architectures", name)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == params_m


@pytest.mark.slow
def test_catalog_figures_match_freshly_built_models():
    # gen_catalog builds every entry on the meta device and compares with the checked-in table
    done = subprocess.run([sys.executable, "-m", "bestiary.plugins.vision.gen_catalog", "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_every_entry_carries_static_metadata_and_a_search_space():
    for entry in bestiary.list_entries("architectures", plugin="vision"):
        meta = entry.metadata
        assert meta["params_m"] > 0 and meta["gmacs"] > 0 and len(meta["input_size"]) == 3
        assert {"lr", "weight_decay", "batch_size", "model.drop_path_rate", "label_smoothing"} <= set(entry.search_space)
    names = {e.name for e in bestiary.list_entries("architectures", plugin="vision")}
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet26d", "resnet50d",
            "wide_resnet50_2", "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
            "vit_large_patch16_224", "vit_base_patch32_224"} <= names


def test_vit_trains_on_small_images_with_small_patches():
    assert vit_patch_size(16, 32) == 4 and vit_patch_size(16, 224) == 16 and vit_patch_size(32, 64) == 8
    model = create("vit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=32, depth=2)
    assert model.patch_embed.grid_size == (8, 8)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert create("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1).patch_embed.grid_size == (4, 4)


def test_hub_weights_are_refused_with_the_remedy():
    with pytest.raises(ValueError) as err:
        bestiary.build("architectures", "resnet18", pretrained=True)
    assert "pass a local file instead: `bestiary train ... --weights PATH`" in str(err.value)


def test_any_timm_model_by_qualified_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTIARY_CACHE_DIR", str(tmp_path))
    entry = bestiary.get_entry("architectures", "timm:convnext_atto")
    assert (entry.qualified_name, entry.provenance.plugin, entry.task) == ("timm:convnext_atto", "vision", "image-classification")
    model = entry.build(num_classes=3)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(KeyError, match="unknown architecture 'timm:not_a_model'"):
        bestiary.get_entry("architectures", "timm:not_a_model")


@pytest.mark.slow
def test_list_all_uses_a_cache_keyed_by_the_timm_version(tmp_path):
    import timm

    env = {**os.environ, "BESTIARY_CACHE_DIR": str(tmp_path), "BESTIARY_DISABLE_PLUGIN_AUTOLOAD": "1"}
    probe = ("import json, sys; from bestiary.cli import main\n"
             "try:\n    main(['list', 'architectures', 'timm:convnext_a*', '--json'], standalone_mode=False)\n"
             "finally:\n    print('TIMM_IMPORTED', 'timm' in sys.modules, file=sys.stderr)")
    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "TIMM_IMPORTED True" in first.stderr
    names = [e["qualified_name"] for e in json.loads(first.stdout)]
    assert "timm:convnext_atto" in names and all(n.startswith("timm:convnext_a") for n in names)
    cache = tmp_path / f"timm-models-{timm.__version__}.json"
    assert "convnext_atto" in json.loads(cache.read_text())
    second = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert "TIMM_IMPORTED False" in second.stderr and json.loads(second.stdout) == json.loads(first.stdout)


def test_digits_split_and_recommended_size():
    data = bestiary.build("datasets", "digits")
    assert (len(data.train), len(data.validation), len(data.test)) == (1257, 180, 360)
    x, y = data.test[0]
    assert x.shape == (1, 32, 32) and 0 <= y < 10
    assert data.info["input_size"] == [1, 32, 32] and data.info["num_classes"] == 10
    labels = [data.test[i][1] for i in range(len(data.test))]
    assert np.bincount(labels).min() >= 35  # stratified: every digit in the test split


def test_dataset_size_and_classes_flow_into_the_model(tmp_path):
    summary = train(quiet(tmp_path, arch="vit_tiny_patch16_224", model={"depth": 1}))
    resolved = json.loads((Path(summary["run_dir"]) / "config.json").read_text())["resolved"]
    assert resolved["model_kwargs"] == {"num_classes": 10, "in_chans": 1, "img_size": 32, "depth": 1, "timm_name": "vit_tiny_patch16_224"} or (
        {k: resolved["model_kwargs"][k] for k in ("num_classes", "in_chans", "img_size")} == {"num_classes": 10, "in_chans": 1, "img_size": 32})
    bigger = train(quiet(tmp_path, arch="vit_tiny_patch16_224", model={"depth": 1}, data={"img_size": 48},
                         run_dir=str(tmp_path / "bigger")))
    resolved = json.loads((Path(bigger["run_dir"]) / "config.json").read_text())["resolved"]
    assert resolved["model_kwargs"]["img_size"] == 48


def test_local_weights_load_except_mismatched_classifier(tmp_path):
    from safetensors.torch import save_file

    source = create("resnet18", num_classes=1000, in_chans=1)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "r18.safetensors"))
    torch.save({"state_dict": source.state_dict()}, tmp_path / "r18.pth")
    for file in ("r18.safetensors", "r18.pth"):
        run = tmp_path / f"run-{file}"
        train(quiet(tmp_path, arch="resnet18", weights=str(tmp_path / file), max_steps=1, optimizer="sgd", lr=1e-9,
                    run_dir=str(run)))
        loaded = bestiary.engine.artifact.load_model(run)
        torch.testing.assert_close(loaded.conv1.weight, source.conv1.weight, rtol=0, atol=1e-6)
        assert loaded.fc.weight.shape == (10, 512)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(quiet(tmp_path, arch="resnet18", weights=str(tmp_path / "missing.pth"), run_dir=str(tmp_path / "m")))


def _write_images(root: Path, classes: int, per_class: int, size: int = 12) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((size, size, 3)) * 80 + c * 80).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")


def test_image_folder_single_tree_and_split_layout(tmp_path):
    _write_images(tmp_path / "tree", classes=3, per_class=10)
    data = bestiary.build("datasets", "image_folder", path=str(tmp_path / "tree"), img_size=16)
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 3, 3)
    assert data.info["classes"] == ["class_0", "class_1", "class_2"]
    assert data.train[0][0].shape == (3, 16, 16)
    _write_images(tmp_path / "split" / "train", classes=2, per_class=4)
    _write_images(tmp_path / "split" / "val", classes=2, per_class=2)
    data = bestiary.build("datasets", "image_folder", path=str(tmp_path / "split"), img_size=16)
    assert (len(data.train), len(data.validation), data.test) == (8, 4, None)
    with pytest.raises(ValueError, match="--set data.path"):
        bestiary.build("datasets", "image_folder")
    summary = train(quiet(tmp_path, arch="resnet18", dataset="image_folder", data={"path": str(tmp_path / "tree"), "img_size": 16}))
    assert summary["status"] == "completed"


def _cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def test_cifar_files_python_and_binary_formats(tmp_path):
    py = tmp_path / "cifar-10-batches-py"
    py.mkdir()
    for i in range(1, 6):
        x, y = _cifar_arrays(4, i)
        (py / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": x, b"labels": y}, protocol=2))
    tx, ty = _cifar_arrays(5, 9)
    (py / "test_batch").write_bytes(pickle.dumps({b"data": tx, b"labels": ty}, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (py / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    data = bestiary.build("datasets", "cifar_files", path=str(tmp_path))
    assert (len(data.train), len(data.validation), len(data.test)) == (18, 2, 5)
    assert data.info["classes"][0] == "airplane"
    image, label = data.test[0]
    assert image.shape == (3, 32, 32) and label == ty[0]
    binary = tmp_path / "bin"
    binary.mkdir()
    for i in range(1, 6):
        x, y = _cifar_arrays(4, i)
        np.concatenate([np.array(y, dtype=np.uint8)[:, None], x], axis=1).tofile(binary / f"data_batch_{i}.bin")
    np.concatenate([np.array(ty, dtype=np.uint8)[:, None], tx], axis=1).tofile(binary / "test_batch.bin")
    data_bin = bestiary.build("datasets", "cifar_files", path=str(binary), augment=False)
    data_py = bestiary.build("datasets", "cifar_files", path=str(tmp_path), augment=False)
    assert torch.equal(data_bin.train[3][0], data_py.train[3][0]) and data_bin.test[4][1] == data_py.test[4][1]


def test_cifar_pickles_that_run_code_are_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (posix|os)\.system"):
        bestiary.build("datasets", "cifar_files", path=str(tmp_path))


def test_synthetic_images_are_deterministic_and_learnable(tmp_path):
    a = bestiary.build("datasets", "synthetic_images", n=100, img_size=8, num_classes=4)
    b = bestiary.build("datasets", "synthetic_images", n=100, img_size=8, num_classes=4)
    assert torch.equal(a.train[7][0], b.train[7][0]) and a.train[7][1] == 3
    assert (len(a.train), len(a.validation), len(a.test)) == (80, 10, 10)


def test_mixup_makes_soft_labels_and_trains(tmp_path):
    data = datasets.digits(mixup=0.2, cutmix=1.0)
    images, labels = data.train_collate([data.train[i] for i in range(8)])
    assert images.shape == (8, 1, 32, 32) and labels.shape == (8, 10)
    torch.testing.assert_close(labels.sum(1), torch.ones(8))
    summary = train(quiet(tmp_path, arch="resnet18", data={"mixup": 0.2}, max_steps=3))
    assert summary["status"] == "completed"


def test_evaluate_writes_the_per_class_report_and_confusion_matrix(tmp_path):
    from bestiary.engine.evaluate import evaluate_run

    summary = train(quiet(tmp_path, arch="resnet18", metrics=["accuracy", "f1_macro", "top3"]))
    result = evaluate_run(summary["run_dir"], split="test")
    matrix = result["confusion_matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 360
    files = {Path(f).name for f in result["report"]}
    assert files == {"per_class.csv", "report.md", "confusion_matrix.png"}
    png = Path(result["report"][2]).read_bytes()
    assert png.startswith(b"\x89PNG")
    rows = (Path(result["report"][0])).read_text().splitlines()
    assert rows[0] == "class,precision,recall,f1,support" and len(rows) == 11
    assert {"accuracy", "f1_macro", "top3"} <= set(result)
