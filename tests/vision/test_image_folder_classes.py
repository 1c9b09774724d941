"""An image folder with images of fewer than two classes is refused: a classifier of one class
reaches accuracy 1 and learns nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bestiary
from bestiary.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def builtin_host():  # type: ignore[no-untyped-def]
    host = bestiary.reset_host(bestiary.PluginHost(autoload=False))
    yield host
    bestiary.reset_host()


def _images(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")


def test_one_class_tree_is_refused_naming_the_folder_and_the_class(tmp_path: Path) -> None:
    _images(tmp_path / "tree" / "cats", 9)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'tree'}: image_folder needs images of at least two classes, "
                                          r"found cats \(9 images\); a classifier of one class learns nothing: "
                                          r"add a folder of images for each other class$"):
        bestiary.build("datasets", "image_folder", path=str(tmp_path / "tree"), img_size=8)


def test_a_second_class_folder_without_images_does_not_count(tmp_path: Path) -> None:
    _images(tmp_path / "split" / "train" / "cats", 4)
    (tmp_path / "split" / "train" / "dogs").mkdir()
    (tmp_path / "split" / "train" / "dogs" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"/split/train: image_folder needs images of at least two classes, found cats \(4 images\);"):
        bestiary.build("datasets", "image_folder", path=str(tmp_path / "split"), img_size=8)
    _images(tmp_path / "split" / "train" / "birds", 4)
    _images(tmp_path / "split" / "val" / "cats", 2)  # a validation folder may hold fewer classes
    data = bestiary.build("datasets", "image_folder", path=str(tmp_path / "split"), img_size=8)
    assert data.info["classes"] == ["birds", "cats", "dogs"] and len(data.validation) == 2


def test_bestiary_train_on_one_class_fails_with_one_line(tmp_path: Path) -> None:
    _images(tmp_path / "tree" / "cats", 9)
    done = subprocess.run([sys.executable, "-m", "bestiary", "train", "resnet18", "--dataset", "image_folder",
                           "--set", f"data.path={tmp_path / 'tree'}", "--set", "data.img_size=8", "--epochs", "1",
                           "--runs-root", str(tmp_path / "runs")],
                          env={**os.environ, "COLUMNS": "250"}, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and lines[-1].startswith("Error: ")
    assert "image_folder needs images of at least two classes, found cats (9 images)" in lines[-1]


def test_broken_cifar_files_and_a_missing_folder_name_the_file_and_the_field(tmp_path: Path) -> None:
    import pickle

    with pytest.raises(ValueError, match=r"is not a folder; pass the folder of class folders with --set data\.path=DIR$"):
        bestiary.build("datasets", "image_folder", path=str(tmp_path / "nowhere"))
    python = tmp_path / "py"
    python.mkdir()
    (python / "data_batch_1").write_bytes(pickle.dumps({"data": [1, 2, 3]})[:-5])  # cut short
    (python / "test_batch").write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"^{python / 'data_batch_1'}: not a CIFAR batch file \("):
        bestiary.build("datasets", "cifar_files", path=str(python))
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "data_batch_1.bin").write_bytes(bytes(3073 * 2 + 10))
    (binary / "test_batch.bin").write_bytes(bytes(3073))
    with pytest.raises(ConfigError, match=rf"^{binary / 'data_batch_1.bin'}: 6156 bytes is not a whole number of "
                                          r"3073-byte CIFAR records; the file is truncated"):
        bestiary.build("datasets", "cifar_files", path=str(binary))
