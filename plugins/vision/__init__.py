"""Vision plugin: ResNet and ViT through timm, image datasets and classification metrics.

Registration reads only static tables (``catalog.py``, ``spaces.py``): listing never imports
torch or timm. Any other timm model is offered on demand as ``timm:<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bestiary import hookimpl

if TYPE_CHECKING:
    from bestiary.extend import Register

from .catalog import CATALOG
from .spaces import SEARCH_SPACES

TASK = "image-classification"
_HERE = "bestiary.plugins.vision"
_CREATE = f"{_HERE}.models:create"

#: name, class, description, higher_is_better (None: not a score) — kept here so registering
#: metrics does not import the torch code in metrics.py.
METRICS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("top3", "Top3Accuracy", "Fraction of samples whose label is among the 3 highest logits", True),
    ("top5", "Top5Accuracy", "Fraction of samples whose label is among the 5 highest logits", True),
    ("precision_macro", "PrecisionMacro", "Precision averaged over classes", True),
    ("precision_micro", "PrecisionMicro", "Precision over all samples", True),
    ("precision_weighted", "PrecisionWeighted", "Precision averaged over classes, weighted by support", True),
    ("recall_macro", "RecallMacro", "Recall averaged over classes", True),
    ("recall_micro", "RecallMicro", "Recall over all samples", True),
    ("recall_weighted", "RecallWeighted", "Recall averaged over classes, weighted by support", True),
    ("f1_macro", "F1Macro", "F1 averaged over classes", True),
    ("f1_micro", "F1Micro", "F1 over all samples", True),
    ("f1_weighted", "F1Weighted", "F1 averaged over classes, weighted by support", True),
    ("confusion_matrix", "ConfusionMatrix", "Counts of true class (rows) by predicted class (columns)", None),
    ("roc_auc", "RocAuc", "One-vs-rest ROC-AUC, macro average over classes", True),
    ("log_loss", "LogLoss", "Mean negative log-likelihood of the softmax probabilities", False),
    ("ece", "ExpectedCalibrationError", "Expected calibration error over 15 confidence bins", False),
)

DATASETS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("digits", "digits", ("The 8x8 handwritten digits scikit-learn ships: 1,797 images, 10 classes, "
                          "fixed stratified split 1,257/180/360, trained at 32x32"), {"input_size": [1, 32, 32], "num_classes": 10}),
    ("image_folder", "image_folder", "Class-per-subfolder PNG/JPEG images at a path you give (data.path)",
     {"input_size": [3, 224, 224], "conformance": {"skip": "reads the user's folder (data.path); tests use generated images"}}),
    ("cifar_files", "cifar_files", "CIFAR-10/100 from local python or binary batch files (data.path), no download",
     {"input_size": [3, 32, 32], "conformance": {"skip": "reads the user's CIFAR files (data.path); tests use generated files"}}),
    ("synthetic_images", "synthetic_images", "Deterministic random images of any size and class count, for benchmarks",
     {"input_size": [3, 32, 32], "num_classes": 10}),
)


_SMALL = {"num_classes": 3, "in_chans": 3, "input_size": [3, 32, 32]}
_CONFORMANCE: dict[str, dict[str, Any]] = {"resnet": {"info": _SMALL}, "vit": {"info": _SMALL, "build": {"depth": 2}}}


#: layers per ViT of the catalogue (timm's defaults), for the pipeline split points
_VIT_DEPTH = {"tiny": 12, "small": 12, "base": 12, "large": 24}
#: timm reshapes the fused qkv output into (3, heads, head_dim): a plain column split would cut
#: across q, k and v, so qkv's output is gathered and proj takes its slice of the whole input
_VIT_TENSOR_PLAN = {"blocks.*.attn.qkv": "colwise_replicate", "blocks.*.attn.proj": "rowwise_replicate",
                    "blocks.*.mlp.fc1": "colwise", "blocks.*.mlp.fc2": "rowwise"}


def _parallel(name: str, family: str) -> dict[str, Any]:
    """Layouts for the tensor, pipeline and fsdp strategies; a pipeline stage begins at each split
    point (the strategy uses as many as it has stages, and only those the built model has); fsdp
    shards each module of the named classes."""
    if family == "resnet":
        return {"pipeline_splits": ["layer2", "layer3", "layer4"], "fsdp_blocks": ["BasicBlock", "Bottleneck"]}
    depth = _VIT_DEPTH[name.split("_")[1]]
    return {"tensor_plan": dict(_VIT_TENSOR_PLAN), "pipeline_splits": [f"blocks.{i}" for i in range(1, depth)],
            "fsdp_blocks": ["Block"]}


def _description(name: str, spec: dict[str, Any]) -> str:
    family = "ResNet" if spec["family"] == "resnet" else "Vision Transformer"
    return f"{family} (timm), {spec['params_m']} M params, {spec['gmacs']} GMACs at {spec['input_size'][-1]}px"


@hookimpl
def register_architectures(register: Register) -> None:
    for name, spec in CATALOG.items():
        family = str(spec["family"])
        register(
            name,
            _CREATE,
            task=TASK,
            description=_description(name, spec),
            tags=(family, "timm"),
            defaults={"timm_name": name},
            search_space=SEARCH_SPACES[family],
            metadata={
                "params_m": spec["params_m"],
                "gmacs": spec["gmacs"],
                "input_size": spec["input_size"],
                "family": family,
                # large models are checked small: same code paths, a fraction of the cost
                "conformance": _CONFORMANCE[family],
                "parallel": _parallel(name, family),
            },
        )


@hookimpl
def register_datasets(register: Register) -> None:
    for name, attr, description, meta in DATASETS:
        register(name, f"{_HERE}.datasets:{attr}", task=TASK, description=description, tags=("vision",), metadata=meta)


@hookimpl
def register_metrics(register: Register) -> None:
    for name, cls, description, higher in METRICS:
        meta = {"higher_is_better": higher}  # None: no score, never ranked
        register(name, f"{_HERE}.metrics:{cls}", task=TASK, description=description, metadata=meta)


def _register_timm(register: Any, name: str) -> None:
    register(name, _CREATE, task=TASK, namespace="timm", description=f"timm model {name}",
             tags=("timm",), defaults={"timm_name": name})


@hookimpl
def resolve_entry(kind: str, namespace: str, name: str, register: Register) -> None:
    if kind == "architectures" and namespace == "timm":
        from .timm_index import is_model

        if is_model(name):
            _register_timm(register, name)


@hookimpl
def discover_entries(kind: str, register: Register) -> None:
    if kind == "architectures":
        from .timm_index import model_names

        for name in model_names():
            _register_timm(register, name)
