"""Training configurations: TOML files in `hiercodec/train/configs/`, one per paper setting.

A config names its family, the family's network (`[network]`, the fields of the family's config
class) and the recipe (`[train]`, the fields of `TrainSettings`). `NAME-small` variants train on a
2-core CPU in minutes. A path to a .toml file works wherever a name does.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from hiercodec.errors import HiercodecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class TrainSettings:
    data: str = "photos"  # a dataset name of hiercodec.train.datasets or a folder of images
    eval_data: str = "heldout"  # "heldout" (the held-out photos), a dataset, a folder, or "none"
    eval_patch: int = 64  # side of the held-out crops evaluated during training
    eval_crops: int = 4  # crops per held-out image
    patch: int = 64  # side of the random training crops (0: whole images, all of one size)
    batch: int = 8  # images per step, over all processes
    optimizer: str = "adam"  # "adam" or "adamax"
    lr: float = 1e-3
    lr_decay: float = 1.0  # exponential decay per step: lr * lr_decay ** step
    warmup: int = 0  # steps of linear learning-rate warm-up (a fresh Adam on trained weights jolts them)
    dropout: float = 0.0
    ema_decay: float = 0.999  # Polyak averaging of the weights (exported by default)
    # the average's decay ramps up from 0 over the first steps, so that it forgets a random
    # initialisation; a run that starts from trained weights (the relay) averages at ema_decay at once
    ema_warmup: bool = True
    steps: int = 1000
    clip: float = 0.0  # gradient-norm clipping; 0 = off
    amp: bool = False  # bfloat16 autocast on CUDA
    amp_cpu: bool = False  # bfloat16 autocast on the CPU (benchmarks/train_speed.py measures it)
    compile: bool = False  # torch.compile the training objective
    compact_checkpoint: bool = False  # 16-bit average and optimizer moments (hiercodec.train.checkpoint)
    # keep the checkpoint of the best held-out evaluation in DIR/best (`hiercodec export DIR/best`):
    # a run that diverges keeps its best weights (the first ham-codec run lost all, RESULTS sec. 10)
    keep_best: bool = False
    gray_every: int = 10  # one batch in N is made gray, so gray images code well too; 0 = never
    eval_every: int = 1000
    log_every: int = 50
    save_every_s: float = 300.0
    seed: int = 0


@dataclass(frozen=True)
class RunConfig:
    name: str
    family: str
    description: str
    network: dict
    train: TrainSettings

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "description": self.description,
                "network": dict(self.network), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls(d["name"], d["family"], d.get("description", ""), dict(d["network"]),
                   TrainSettings(**d["train"]))

    def with_train(self, **changes) -> "RunConfig":
        """A copy with some recipe fields changed (None values are ignored)."""
        return replace(self, train=replace(self.train, **{k: v for k, v in changes.items() if v is not None}))


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load_config(name: str) -> RunConfig:
    """The config called NAME (a file of configs/) or the TOML file at path NAME."""
    path = Path(name)
    if path.suffix != ".toml":
        path = CONFIG_DIR / f"{name}.toml"
    if not path.is_file():
        raise HiercodecError(f"no training config {name!r}; choose one of {', '.join(config_names())} "
                             "or give a path to a .toml file")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise HiercodecError(f"{path}: not a valid TOML config ({err})") from None
    known = {f.name for f in fields(TrainSettings)}
    unknown = set(raw.get("train", {})) - known
    if unknown or "family" not in raw or "network" not in raw:
        raise HiercodecError(f"{path}: needs `family`, [network] and [train] with fields of TrainSettings"
                             + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
    defaults = TrainSettings()
    for key, value in raw.get("train", {}).items():
        want = type(getattr(defaults, key))
        if not (isinstance(value, want) or (want is float and type(value) is int)):
            raise HiercodecError(f"{path}: [train] {key} = {value!r} should be a {want.__name__}")
    return RunConfig(path.stem, raw["family"], raw.get("description", ""), dict(raw["network"]),
                     TrainSettings(**raw.get("train", {})))
