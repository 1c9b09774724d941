"""The conformance kit (``bestiary.testing``): run over every registered entry, proven to catch
real defects, and usable as a pytest plugin."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import bestiary
from bestiary import hookimpl
from bestiary.registry import Entry
from bestiary.testing import (
    ConformanceError,
    check_architecture,
    check_dataset,
    check_entry,
    check_metric,
    check_strategy,
    check_task,
    conformance_tests,
    select_entries,
)

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import toyzoo

#: toy_mlp's first layer is sized by its ``size`` argument (4), not by the task's info: check it on
#: the images it is built for.
TOY_OVERRIDES = {"toyzoo:toy_mlp": {"info": {"in_chans": 1, "input_size": [1, 4, 4]}}}


def toy_host(*plugins: tuple[object, str]) -> bestiary.PluginHost:
    """Built-ins, the toy zoo and ``plugins``; no third-party entry points, so the set is fixed."""
    host = bestiary.PluginHost(autoload=False, disabled=())
    for plugin, name in [(toyzoo, "toyzoo"), *plugins]:
        info = host.add_plugin(plugin, name)
        assert info.status == "ok", info.error
    return host


TOY_HOST = toy_host()


@pytest.fixture(autouse=True)
def _toy_zoo() -> None:
    # The checks look tasks and saved models up in the process-wide host (the conftest restores it).
    bestiary.reset_host(TOY_HOST)


# -- every registered entry ---------------------------------------------------------------------

test_every_entry = conformance_tests(host=TOY_HOST, overrides=TOY_OVERRIDES)


def test_every_kind_is_covered() -> None:
    entries = select_entries(host=TOY_HOST)
    kinds = {e.kind for e in entries}
    assert {"architectures", "datasets", "metrics", "strategies", "tasks"} <= kinds
    assert {
        "toyzoo:toy_mlp",
        "toyzoo:toy_cnn",
        "toyzoo:toy_linear",
        "toyzoo:blobs",
        "toyzoo:sine",
        "single:single",
    } <= {e.qualified_name for e in entries}
    (mark,) = [m for m in test_every_entry.pytestmark if m.name == "parametrize"]
    assert mark.kwargs["ids"] == [e.qualified_name for e in entries]


def test_reports_name_each_step() -> None:
    report = check_architecture("toyzoo:toy_linear")
    assert report.ok and report.passed[0] == "build" and report.passed[-1] == "save/load round trip"
    assert "toyzoo:toy_linear" in str(report) and "7 checks passed" in str(report)
    assert check_dataset("sine").passed == ["build", "train batch", "validation batch", "test batch"]


def test_build_kwargs_and_info_shrink_an_architecture() -> None:
    # Without help, toy_mlp is built for 3x32x32 images but sized for 4x4 ones.
    with pytest.raises(ConformanceError, match=r"toy_mlp.*'forward'.*mat1 and mat2") as info:
        check_architecture("toy_mlp")
    assert str(info.value.hint) == (
        "the model itself fails on images [2, 3, 32, 32] made from info {'num_classes': 3, 'in_chans': 3, "
        "'input_size': [3, 32, 32]}; if it is built for other inputs, declare them: "
        "metadata={'conformance': {'info': {...}}}"
    )
    assert check_architecture("toy_mlp", info={"in_chans": 1, "input_size": [1, 4, 4]}).ok
    assert check_architecture("toy_mlp", size=32, hidden=4).ok  # build kwargs go to the factory


# -- entries with real defects ------------------------------------------------------------------


def noisy_net(num_classes: int = 3, in_chans: int = 3):  # type: ignore[no-untyped-def]
    """Adds a random offset held in a non-persistent buffer: a reloaded model draws another."""
    import torch

    class Noisy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(in_chans, num_classes)
            self.register_buffer("offset", torch.randn(num_classes), persistent=False)

        def forward(self, images):  # type: ignore[no-untyped-def]
            return self.head(images.mean((2, 3))) + self.offset

    return Noisy()


def detached_net(num_classes: int = 3, in_chans: int = 3):  # type: ignore[no-untyped-def]
    import torch

    class Detached(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(in_chans, num_classes)

        def forward(self, images):  # type: ignore[no-untyped-def]
            return self.head(images.mean((2, 3))).detach()

    return Detached()


def misdeclared_blobs(size: int = 5):  # type: ignore[no-untyped-def]
    """Images are 1 x size x size, but info says 1x4x4."""
    data = toyzoo.blobs(n=20, size=size)
    data.info = {"num_classes": 3, "in_chans": 1, "input_size": [1, 4, 4]}
    return data


def mislabelled_blobs():  # type: ignore[no-untyped-def]
    """Labels 0..2, but info declares 2 classes."""
    data = toyzoo.blobs(n=20)
    data.info = {**data.info, "num_classes": 2}
    return data


def not_data():  # type: ignore[no-untyped-def]
    return {"train": [1, 2, 3]}


def mean_of_means():  # type: ignore[no-untyped-def]
    """MAE averaged over batches: right for equal batch sizes only."""
    from bestiary.engine.metrics import Metric

    class MeanOfMeans(Metric):
        higher_is_better = False

        def stats(self, outputs, batch):  # type: ignore[no-untyped-def]
            import torch

            mae = (outputs["mean"] - batch["future_target"]).abs().mean()
            return torch.stack([mae.double(), torch.tensor(1.0, dtype=torch.float64)])

        def value(self, total):  # type: ignore[no-untyped-def]
            return float(total[0] / total[1])

    return MeanOfMeans()


def sticky_grads():  # type: ignore[no-untyped-def]
    from bestiary.engine.strategy import Strategy

    class Sticky(Strategy):
        name = "sticky"

        def optimizer_step(self, model, optimizer, *, scaler=None, clip_grad_norm=None):  # type: ignore[no-untyped-def]
            optimizer.step()  # forgets optimizer.zero_grad()

    return Sticky()


def tensor_forecaster(prediction_length: int = 4, context_length: int = 12, freq: str = "D"):  # type: ignore[no-untyped-def]
    """Returns the forecast as a tensor, where the forecasting task expects a dict."""
    import torch

    class TensorOut(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(context_length, prediction_length)

        def forward(self, batch):  # type: ignore[no-untyped-def]
            return self.head(batch["past_target"])

    return TensorOut()


def quantiles_without_loss(prediction_length: int = 4, context_length: int = 12, freq: str = "D"):  # type: ignore[no-untyped-def]
    """Forecasts quantiles but returns no loss: the task trains its mean only."""
    import torch

    class NoLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(context_length, 3 * prediction_length)

        def forward(self, batch):  # type: ignore[no-untyped-def]
            q = self.head(batch["past_target"]).view(-1, 3, prediction_length)
            return {"mean": q[:, 1], "quantiles": q, "levels": [0.1, 0.5, 0.9]}

    return NoLoss()


def tuple_classifier(num_classes: int = 3, in_chans: int = 3):  # type: ignore[no-untyped-def]
    """Returns (logits, features), as some backbones do, where the task expects the logits alone."""
    import torch

    class Pair(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(in_chans, num_classes)

        def forward(self, images):  # type: ignore[no-untyped-def]
            features = images.mean((2, 3))
            return self.head(features), features

    return Pair()


def wide_classifier(num_classes: int = 3, in_chans: int = 3):  # type: ignore[no-untyped-def]
    """Ignores num_classes: cross entropy still runs while the labels fit, so only the shape tells."""
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))


def splits_as_tuple():  # type: ignore[no-untyped-def]
    data = toyzoo.blobs(n=20)
    return data.train, data.validation


def undirected_error_rate():  # type: ignore[no-untyped-def]
    from bestiary.engine.metrics import Metric

    class ErrorRate(Metric):
        higher_is_better = False

        def stats(self, outputs, batch):  # type: ignore[no-untyped-def]
            import torch

            wrong = (outputs.argmax(-1) != batch[1]).sum().double()
            return torch.stack([wrong, torch.tensor(float(len(batch[1])), dtype=torch.float64)])

        def value(self, total):  # type: ignore[no-untyped-def]
            return float(total[0] / total[1])

    return ErrorRate()


class Specimens:
    """A plugin registering entries with real defects, and entries that use the kit's settings."""

    @staticmethod
    @hookimpl
    def register_architectures(register):  # type: ignore[no-untyped-def]
        register("noisy_net", noisy_net, task="image-classification")
        register("detached_net", detached_net, task="image-classification")
        register("taskless_net", detached_net)
        register(
            "small_mlp",
            "toyzoo:toy_mlp",
            task="image-classification",
            metadata={
                "conformance": {"info": {"in_chans": 1, "input_size": [1, 4, 4]}, "build": {"hidden": 4}}
            },
        )
        register(
            "gpu_net",
            noisy_net,
            task="image-classification",
            metadata={"conformance": {"skip": "needs a CUDA device"}},
        )
        register("typo_net", noisy_net, task="image-classification", metadata={"conformance": {"bulid": {}}})
        register("tensor_forecaster", tensor_forecaster, task="forecasting")
        register("quantiles_without_loss", quantiles_without_loss, task="forecasting")
        register("tuple_classifier", tuple_classifier, task="image-classification")
        register("wide_classifier", wide_classifier, task="image-classification")

    @staticmethod
    @hookimpl
    def register_datasets(register):  # type: ignore[no-untyped-def]
        register("misdeclared_blobs", misdeclared_blobs, task="image-classification")
        register("mislabelled_blobs", mislabelled_blobs, task="image-classification")
        register("not_data", not_data, task="image-classification")
        register("splits_as_tuple", splits_as_tuple, task="image-classification")

    @staticmethod
    @hookimpl
    def register_metrics(register):  # type: ignore[no-untyped-def]
        register("mean_of_means", mean_of_means, task="forecasting", metadata={"higher_is_better": False})
        register("taskless", mean_of_means, metadata={"higher_is_better": False})
        register("undirected", undirected_error_rate, task="image-classification", metadata={"higher_is_better": False})
        register("misdirected", undirected_error_rate, task="image-classification", metadata={"higher_is_better": True})

    @staticmethod
    @hookimpl
    def register_strategies(register):  # type: ignore[no-untyped-def]
        register("sticky", sticky_grads)
        register("two_procs", sticky_grads, metadata={"min_world_size": 2})


@pytest.fixture
def specimens() -> bestiary.PluginHost:
    return bestiary.reset_host(toy_host((Specimens(), "specimens")))


def failure(check, name: str, **kwargs) -> ConformanceError:  # type: ignore[no-untyped-def]
    with pytest.raises(ConformanceError) as info:
        check(f"specimens:{name}", **kwargs)
    err = info.value
    # Every failure names the entry, its plugin and its distribution.
    assert f"'specimens:{name}' (plugin 'specimens', distribution local 0)" in str(err)
    assert isinstance(err, AssertionError) and err.entry.name == name
    return err


def test_catches_a_model_that_does_not_survive_save_and_load(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "noisy_net")
    assert err.check == "save/load round trip"
    assert "outputs differ after save_model/load_model: outputs: max abs difference" in str(err)
    assert "non-persistent buffers" in str(err)


def test_catches_a_model_without_gradients(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "detached_net")
    assert err.check == "forward" and "the loss does not require grad" in err.detail


def test_catches_an_architecture_without_task(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "taskless_net")
    assert err.check == "task" and "declares no task" in err.detail and "task=" in str(err.hint)


def test_catches_a_dataset_whose_batches_contradict_its_info(specimens: bestiary.PluginHost) -> None:
    err = failure(check_dataset, "misdeclared_blobs")
    assert err.check == "train batch"
    assert err.detail == (
        "images have shape [4, 1, 5, 5] but info declares input_size [1, 4, 4] (expected [4, 1, 4, 4])"
    )
    assert check_dataset("specimens:misdeclared_blobs", size=4).ok  # the same data, as declared


def test_catches_labels_out_of_range(specimens: bestiary.PluginHost) -> None:
    err = failure(check_dataset, "mislabelled_blobs")
    assert "labels span [0, 2], outside [0, 2) (num_classes=2)" in err.detail


def test_catches_a_dataset_factory_returning_something_else(specimens: bestiary.PluginHost) -> None:
    err = failure(check_dataset, "not_data")
    assert "returned dict, not bestiary.engine.data.Data" in err.detail


def test_catches_a_metric_that_averages_batch_averages(specimens: bestiary.PluginHost) -> None:
    err = failure(check_metric, "mean_of_means")
    assert err.check == "batches vs one go"
    assert "accumulated over 3 batches (sizes 2, 3, 5)" in err.detail and "it is not additive" in err.detail
    assert "never average per-batch averages" in str(err.hint)


# -- the common mistakes get a hint that names the fix --------------------------------------------


def test_hint_for_a_forecaster_returning_a_tensor(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "tensor_forecaster")
    assert err.check == "forward" and err.detail.startswith("RuntimeError: Tensor.__contains__")
    assert err.hint is not None and err.hint.startswith("forward returned Tensor, not a dict;")
    assert "'mean' [B, prediction_length]" in err.hint and "\n  hint: forward returned Tensor" in str(err)


def test_hint_for_quantiles_without_a_loss(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "quantiles_without_loss")
    assert err.check == "forward" and "the quantile head gets no gradient" in err.detail
    assert err.hint is not None and err.hint.startswith("return out['loss']")


def test_hint_for_a_classifier_returning_a_tuple(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "tuple_classifier")
    assert err.check == "forward" and "forward returned tuple" in str(err.hint)
    assert "logits [B, num_classes] as one tensor" in str(err.hint)


def test_hint_for_logits_of_the_wrong_width(specimens: bestiary.PluginHost) -> None:
    err = failure(check_architecture, "wide_classifier")
    assert (err.check, err.detail) == ("forward", "forward returned shape [2, 10], expected [2, 3]")
    assert "logits [B, num_classes]" in str(err.hint)


def test_hint_for_a_dataset_factory_returning_its_splits(specimens: bestiary.PluginHost) -> None:
    err = failure(check_dataset, "splits_as_tuple")
    assert err.check == "build" and "returned tuple, not bestiary.engine.data.Data" in err.detail
    assert "return bestiary.engine.data.Data(train=..., validation=..., info={...})" in str(err.hint)


def test_hint_for_a_metric_whose_entry_and_object_disagree_on_direction(specimens: bestiary.PluginHost) -> None:
    # a metric entry without a direction never registers (tests/tune/test_direction.py)
    err = failure(check_metric, "misdirected")
    assert err.detail == "metadata says higher_is_better=True, the metric object False"
    assert "higher_is_better = True" in str(err.hint)


def test_hint_for_a_metric_fed_what_it_does_not_expect(specimens: bestiary.PluginHost) -> None:
    # an image-classification metric checked under forecasting gets a dict of forecasts
    err = failure(check_metric, "undirected", overrides={"undirected": {"task": "forecasting"}})
    assert err.check == "update" and "stats(outputs, batch) receives the outputs" in str(err.hint)


def test_catches_a_metric_without_task(specimens: bestiary.PluginHost) -> None:
    assert failure(check_metric, "taskless").check == "task"


def test_catches_a_strategy_that_keeps_gradients(specimens: bestiary.PluginHost) -> None:
    err = failure(check_strategy, "sticky")
    assert err.check == "optimizer_step" and "gradients are left after the step" in err.detail


def test_conformance_metadata(specimens: bestiary.PluginHost) -> None:
    assert check_architecture("specimens:small_mlp").ok  # small settings declared by the entry
    report = check_entry(bestiary.get_entry("architectures", "specimens:gpu_net"))
    assert report.skipped == "needs a CUDA device" and "skipped: needs a CUDA device" in str(report)
    err = failure(check_architecture, "typo_net")
    assert "has unknown key(s) ['bulid']" in err.detail and "build:" in str(err.hint)


def test_multi_process_strategies_and_unknown_kinds_are_skipped(specimens: bestiary.PluginHost) -> None:
    assert "needs 2 processes" in str(check_strategy("specimens:two_procs").skipped)
    tracker = Entry(name="jsonl", kind="trackers", factory="toyzoo:toy_mlp")
    assert "no conformance check for tracker entries" in str(check_entry(tracker).skipped)


def test_entries_of_another_kind_are_refused() -> None:
    with pytest.raises(TypeError, match="'toyzoo:blobs' is a dataset, not a architecture"):
        check_architecture(bestiary.get_entry("datasets", "blobs"))
    assert check_task("image-classification").ok


# -- the pytest plugin --------------------------------------------------------------------------

ZOO_TESTS = """
import pytest
from bestiary.testing import check_entry, conformance_tests

test_zoo = conformance_tests(plugin="toyzoo", overrides={"toy_mlp": {"info": {"in_chans": 1, "input_size": [1, 4, 4]}}})

@pytest.mark.bestiary_conformance(kind="metrics", plugin="timeseries", pattern="r*")
def test_metric(bestiary_entry):
    check_entry(bestiary_entry)
"""


def _import_optimizer_stack() -> None:
    """The first optimizer step imports torch's compiler stack lazily. Do it at collection: pytester
    forgets modules imported while a test runs, and torch refuses to register its operators twice."""
    import torch

    param = torch.zeros(1, requires_grad=True)
    param.grad = torch.zeros(1)
    torch.optim.SGD([param], lr=0.1).step()


_import_optimizer_stack()


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Load the plugin explicitly, whether or not this environment's install declares the entry point.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_pytest_plugin_generates_one_test_per_entry(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_zoo=ZOO_TESTS)
    result = inner.runpytest_inprocess(
        "-p", "bestiary.testing.plugin", "-v", "--bestiary-conformance=architectures/toyzoo:toy_[cl]*"
    )
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines_random(
        [
            "*test_zoo.py::test_zoo?toyzoo:toy_mlp? PASSED*",
            "*test_zoo.py::test_zoo?toyzoo:sine? PASSED*",
            "*test_zoo.py::test_metric?timeseries:rmse? PASSED*",
            "*bestiary-conformance::architecture?toyzoo:toy_linear? PASSED*",
        ]
    )


def test_pytest_plugin_reports_the_kit_message(inner: pytest.Pytester) -> None:
    bestiary.reset_host(toy_host((Specimens(), "specimens")))
    result = inner.runpytest_inprocess(
        "-p", "bestiary.testing.plugin", "--bestiary-conformance=architectures/specimens:*"
    )
    result.assert_outcomes(failed=8, passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*architecture 'specimens:noisy_net' (plugin 'specimens', distribution local 0) failed conformance "
                "check 'save/load round trip'*"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_empty_selection_fails_with_the_plugins_there_are(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        "from bestiary.testing import conformance_tests\ntest_none = conformance_tests(plugin='nozoo')\n"
    )
    result = inner.runpytest_inprocess("-p", "bestiary.testing.plugin")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no entries match {'plugin': 'nozoo'}; plugins with entries: *toyzoo*"])


def test_pytest_plugin_is_idle_until_used(tmp_path: Path) -> None:
    code = (
        "import sys, bestiary.testing.plugin, bestiary.testing, bestiary.host as h\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert h._host is None, 'plugins loaded'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_pytest_plugin_is_declared() -> None:
    project = tomllib.loads((HERE.parent.parent / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"bestiary": "bestiary.testing.plugin"}
    assert "bestiary.testing" in project["tool"]["setuptools"]["packages"]
    plugin = importlib.import_module("bestiary.testing.plugin")
    assert callable(plugin.pytest_addoption) and callable(plugin.bestiary_entry)
