"""The cells of each paper table and figure: their axes (PAPER.md §4) and how a cell becomes ``train.py`` overrides.

Each :class:`Experiment` has named axes with the paper's values (``--set AXIS=v1,v2`` replaces one, e.g. to run
one backbone or a tiny stand-in) and an enumeration ``cells(axes, extra) -> list[Cell]``. Compute estimates are
orders of magnitude in H100-hours, from the same FLOP- and size-based reasoning as the experiments' READMEs
(unknown backbones, e.g. the tiny stand-ins, have none).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from randlora.data.fewshot import DATASETS as FEWSHOT_DATASETS
from randlora.data.vtab import TASKS as VTAB_TASKS
from randlora.experiments.cells import Cell, make_cell

SEEDS = ("0", "1", "2")
FIG3_DATASETS = tuple(FEWSHOT_DATASETS)                      # the 22 datasets
FIG1_DATASETS = tuple(d for d in FEWSHOT_DATASETS if d != "imagenet")  # "21 datasets": Figure 3's without ImageNet
REGIMES = ("1", "2", "4", "16", "50%", "100%")
CLIP_BACKBONES = ("clip_vitb32", "clip_vitl14", "clip_vith14")
FIG3_VARIANTS = ("full", "lora", "vera", "nola", "randlora")
LLM_BACKBONES = ("qwen2_0_5b", "phi3_mini", "llama3_8b")
TABLE1_VARIANTS = ("nola", "vera", "lora_efficient", "lora_performant", "randlora_efficient", "randlora_performant")
FIG1_LLAMA_VARIANTS = ("lora_efficient", "lora_performant", "lora_large", "randlora_efficient",
                       "randlora_performant", "randlora_large")
TRAIN_SETS = ("15k", "170k")
BASES = ("dense", "sparse", "very_sparse")
ZERO_SHOT = "zero_shot"  # the variant name of the untrained model (adapter=none)
GLUE_TASKS = ("sst2", "mrpc", "cola", "qnli", "rte", "stsb")
GLUE_TRAIN_SIZE = {"sst2": 67_349, "mrpc": 3_668, "cola": 8_551, "qnli": 104_743, "rte": 2_490, "stsb": 5_749}
E2E_HOURS = {"gpt2_medium": 1.0}  # 5 epochs x 42k pairs at batch 8 + 630 MRs x 10 beams, one H100 (estimate)
GLUE_SEQUENCES_PER_SECOND = {"roberta_base": 1500, "roberta_large": 500}  # 128 tokens, bf16, one H100

# Compute model (estimates): images per second of training on one H100 in bf16, images seen per cell.
IMAGES_PER_SECOND = {"clip_vitb32": 3000, "clip_vitl14": 1200, "clip_vith14": 600, "dinov2_vitb14": 2000,
                     "dinov2_vitl14": 700}
FULL_DATA_IMAGES = 240_000      # mean over the 21 datasets of epochs x training images (≈ 5M in all)
IMAGENET_IMAGES = 12_800_000    # 10 epochs of 1.28M
FEW_SHOT_IMAGES = 10 * 10 * 128  # 10 epochs of at least 10 batches of 128
EVAL_IMAGES = 10_000
RUN_OVERHEAD_HOURS = 0.03       # start-up, class-prompt embeddings, test pass
LLM_HOURS = {"llama3_8b": {"15k": 0.5, "170k": 1.4, "eval": 0.4}, "phi3_mini": {"15k": 0.2, "170k": 0.6, "eval": 0.15},
             "qwen2_0_5b": {"15k": 0.05, "170k": 0.12, "eval": 0.04}}  # train + generation eval; eval alone


def image_hours(backbone: str, dataset: str, regime: str | None) -> float | None:
    """Estimated H100-hours of one vision cell (None for a backbone without a throughput estimate)."""
    rate = IMAGES_PER_SECOND.get(backbone)
    if rate is None:
        return None
    if regime is None:  # zero-shot: the test pass only
        images = EVAL_IMAGES
    elif regime.endswith("%"):
        images = (IMAGENET_IMAGES if dataset == "imagenet" else FULL_DATA_IMAGES) * float(regime[:-1]) / 100
    else:
        images = FEW_SHOT_IMAGES
    return RUN_OVERHEAD_HOURS + (images + EVAL_IMAGES) / rate / 3600


def llm_hours(backbone: str, train_set: str | None) -> float | None:
    """Estimated H100-hours of one commonsense cell (training on ``train_set`` + generation; None: eval only)."""
    costs = LLM_HOURS.get(backbone)
    return None if costs is None else costs["eval"] if train_set is None else costs.get(train_set)


@dataclass(frozen=True)
class Experiment:
    """A paper table or figure: its axes (name -> the paper's values) and how they become cells."""

    name: str
    title: str
    axes: Mapping[str, tuple[str, ...]]
    enumerate: Callable[[Mapping[str, Sequence[str]], Sequence[str]], list[Cell]]


def _fig3(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
    cells = []
    for backbone in axes["backbone"]:
        for variant in axes["adapter"]:
            if variant == ZERO_SHOT:  # the floor: the pretrained model with the class prompts, once per dataset
                shared = ("experiment=fig3_clip", "adapter=none", f"backbone={backbone}")
                cells += [make_cell(shared, extra, dataset=d, seed=0, ignore=("regime",),
                                    hours=image_hours(backbone, d, None)) for d in axes["dataset"]]
                continue
            shared = (f"experiment=fig3_clip/{variant}", f"backbone={backbone}")
            cells += [make_cell(shared, extra, dataset=d, regime=r, seed=int(s), hours=image_hours(backbone, d, r))
                      for r in axes["regime"] for d in axes["dataset"] for s in axes["seed"]]
    return cells


def _rank_curve(experiment: str) -> Callable[[Mapping[str, Sequence[str]], Sequence[str]], list[Cell]]:
    """Figure 1's vision panels: LoRA and RandLoRA over their rank sweeps, all the training data."""
    def cells(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
        out = []
        for backbone in axes["backbone"]:
            for variant in axes["adapter"]:
                for rank in axes[f"{variant}_rank"]:
                    shared = (f"experiment={experiment}/{variant}", f"backbone={backbone}", f"adapter.rank={rank}")
                    out += [make_cell(shared, extra, dataset=d, regime="100%", seed=int(s),
                                      hours=image_hours(backbone, d, "100%"))
                            for d in axes["dataset"] for s in axes["seed"]]
        return out
    return cells


def _commonsense(experiment_dir: str = "table1_commonsense", bases: Sequence[str] | None = None):
    """Table 1 (and Figure 1's LLaMA panel): networks x variants x training sets x seeds, plus zero-shot."""
    def cells(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
        out = []
        for backbone in axes["backbone"]:
            for variant in axes["adapter"]:
                if variant == ZERO_SHOT:  # trained on nothing: one run per network fills both training-set rows
                    shared = ("experiment=table1_commonsense", "adapter=none", f"backbone={backbone}",
                              "task.train_path=null")
                    out.append(make_cell(shared, extra, seed=0, ignore=("train_set",),
                                         hours=llm_hours(backbone, None)))
                    continue
                for basis in axes.get("basis", [None]):
                    for train_set in axes["train_set"]:
                        shared = (f"experiment={experiment_dir}/{variant}", f"backbone={backbone}",
                                  f"task.train_set={train_set}") + ((f"adapter.basis={basis}",) if basis else ())
                        out += [make_cell(shared, extra, seed=int(s), hours=llm_hours(backbone, train_set))
                                for s in axes["seed"]]
        return out
    return cells


def _vtab(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
    return [make_cell(("experiment=vtab", f"backbone={backbone}", f"adapter={adapter}"), extra, dataset=task,
                      seed=int(s), hours=None if backbone not in IMAGES_PER_SECOND else
                      RUN_OVERHEAD_HOURS + (100_000 + 20_000) / IMAGES_PER_SECOND[backbone] / 3600)
            for backbone in axes["backbone"] for adapter in axes["adapter"] for task in axes["dataset"]
            for s in axes["seed"]]


def _sparse_bases(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
    """Dense vs sparse vs very sparse RandLoRA bases on the Figure 3 (CLIP) and Table 1 (commonsense) settings."""
    cells = []
    for backbone in axes["clip_backbone"]:
        for basis in axes["basis"]:
            shared = ("experiment=fig3_clip/randlora", f"backbone={backbone}", f"adapter.basis={basis}")
            cells += [make_cell(shared, extra, dataset=d, regime=r, seed=int(s), hours=image_hours(backbone, d, r))
                      for r in axes["regime"] for d in axes["dataset"] for s in axes["seed"]]
    llm_axes = {"backbone": axes["llm_backbone"], "adapter": axes["llm_adapter"], "basis": axes["basis"],
                "train_set": axes["train_set"], "seed": axes["seed"]}
    return cells + _commonsense()(llm_axes, extra)


def _glue(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
    """The authors' GLUE runs: RoBERTa-base and -large x LoRA, RandLoRA, VeRA x six tasks x seeds 1-5."""
    def hours(backbone: str, task: str) -> float | None:
        rate = GLUE_SEQUENCES_PER_SECOND.get(backbone)
        return None if rate is None else RUN_OVERHEAD_HOURS + 10 * GLUE_TRAIN_SIZE.get(task, 0) / rate / 3600

    return [make_cell((f"experiment=glue/{variant}", f"backbone={backbone}"), extra, dataset=task, seed=int(s),
                      hours=hours(backbone, task))
            for backbone in axes["backbone"] for variant in axes["adapter"] for task in axes["dataset"]
            for s in axes["seed"]]


def _e2e(axes: Mapping[str, Sequence[str]], extra: Sequence[str]) -> list[Cell]:
    """The authors' E2E NLG runs: GPT-2 medium x LoRA, RandLoRA x seeds (≈ 5 epochs of 42k pairs: ~1 H100-hour)."""
    return [make_cell((f"experiment=e2e/{variant}", f"backbone={backbone}"), extra, seed=int(s),
                      hours=E2E_HOURS.get(backbone))
            for backbone in axes["backbone"] for variant in axes["adapter"] for s in axes["seed"]]


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("fig3_clip", "Figure 3: CLIP over few-shot regimes and data fractions",
               {"backbone": CLIP_BACKBONES, "adapter": FIG3_VARIANTS + (ZERO_SHOT,), "dataset": FIG3_DATASETS,
                "regime": REGIMES, "seed": SEEDS}, _fig3),
    Experiment("fig1_clip", "Figure 1 (middle): CLIP accuracy vs trainable parameters",
               {"backbone": ("clip_vitb32",), "adapter": ("lora", "randlora"),
                "lora_rank": ("1", "4", "8", "16", "32", "64"),       # the plot's six LoRA points (215,040 per rank)
                "randlora_rank": ("128", "64", "12", "6", "3"),       # the ranks nearest its five RandLoRA points
                "dataset": FIG1_DATASETS, "seed": SEEDS},
               _rank_curve("fig1_clip")),
    Experiment("fig1_dinov2", "Figure 1 (left): DINOv2 accuracy vs trainable parameters",
               {"backbone": ("dinov2_vitb14",), "adapter": ("lora", "randlora"),
                "lora_rank": ("1", "2", "4", "8", "16", "32"),        # the plot's six LoRA and five RandLoRA points
                "randlora_rank": ("128", "64", "32", "16", "8"),
                "dataset": FIG1_DATASETS, "seed": SEEDS}, _rank_curve("fig1_dinov2")),
    Experiment("fig1_llama", "Figure 1 (right): LLaMA3-8B accuracy vs trainable parameters",
               {"backbone": ("llama3_8b",), "adapter": FIG1_LLAMA_VARIANTS, "train_set": ("170k",), "seed": SEEDS},
               _commonsense()),
    Experiment("table1_commonsense", "Table 1: commonsense reasoning",
               {"backbone": LLM_BACKBONES, "adapter": (ZERO_SHOT,) + TABLE1_VARIANTS, "train_set": TRAIN_SETS,
                "seed": SEEDS}, _commonsense()),
    Experiment("vtab", "VTAB-1k (not in the paper)",
               {"backbone": ("dinov2_vitb14",), "adapter": ("full", "lora", "vera", "nola", "randlora"),
                "dataset": tuple(VTAB_TASKS), "seed": SEEDS}, _vtab),
    Experiment("glue", "GLUE (appendix): RoBERTa-base and -large",
               {"backbone": ("roberta_base", "roberta_large"), "adapter": ("lora", "randlora", "vera"),
                "dataset": GLUE_TASKS, "seed": ("1", "2", "3", "4", "5")}, _glue),
    Experiment("e2e", "E2E NLG (appendix): GPT-2 medium",
               {"backbone": ("gpt2_medium",), "adapter": ("lora", "randlora"), "seed": SEEDS}, _e2e),
    Experiment("sparse_bases", "Sparse bases: dense vs sparse vs very sparse RandLoRA (Figure 3, Table 1 settings)",
               {"clip_backbone": ("clip_vitb32",), "dataset": FIG3_DATASETS, "regime": REGIMES,
                "llm_backbone": LLM_BACKBONES, "llm_adapter": ("randlora_efficient", "randlora_performant"),
                "train_set": TRAIN_SETS, "basis": BASES, "seed": SEEDS}, _sparse_bases),
)}


def experiment_cells(name: str, settings: Mapping[str, Sequence[str]] | None = None,
                     extra: Sequence[str] = ()) -> list[Cell]:
    """The cells of experiment ``name``, with axes replaced by ``settings`` (axis -> values)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} is not known; allowed: {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    unknown = sorted(set(settings or {}) - set(experiment.axes))
    if unknown:
        raise ValueError(f"--set {unknown[0]}: {name} has no such axis; allowed: {', '.join(experiment.axes)}")
    empty = [axis for axis, values in (settings or {}).items() if not values]
    if empty:
        raise ValueError(f"--set {empty[0]}= needs at least one value")
    axes = {**experiment.axes, **{k: tuple(v) for k, v in (settings or {}).items()}}
    return experiment.enumerate(axes, tuple(extra))
