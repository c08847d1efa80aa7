"""Suites: YAML files validated into typed models, expanded into fully resolved :class:`RunSpec` s.

Precedence of every setting, written once: CLI override > the suite's algorithm block > the suite's
defaults > ``Algorithm.Config`` (the paper's defaults). ``None`` means "not given" at every layer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from snnbench.errors import SnnbenchError, SuiteError, UnknownNameError

SUITE_DIRS_ENV = "SNNBENCH_SUITES"
MAX_TIMESTEPS = 100_000  # beyond any published SNN latency; larger values are typos that would only fail
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _slug(value: str) -> str:
    """Names that become file and folder names (suite, entry, budget) stay inside ``--out``."""
    if not SLUG.fullmatch(value):
        raise ValueError(
            "expected a name of at most 100 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (it names files under --out)"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Timestep = Annotated[int, Field(gt=0, le=MAX_TIMESTEPS)]
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # NumPy's and scikit-learn's seed range
MAX_SUITE_BYTES = 1 << 20  # a suite file is tens of KB; beyond 1 MiB it is not a suite
MAX_YAML_NODES = 100_000  # values after expanding YAML aliases (the largest suite has a few thousand)
MAX_LAYER_SIZE = 65_536  # units, channels, kernel, stride, padding or pool size of one layer (2¹⁶)
MAX_SHOWN = 200  # characters of a value quoted in an error message
FLOAT32_MAX = 3.4028234663852886e38  # the inputs are float32: statistics outside its range become 0 or inf
FLOAT32_TINY = 1.1754943508222875e-38  # smallest normal float32


class _Brief:
    """A value quoted in an error message, cut to :data:`MAX_SHOWN` characters without ever building its
    whole repr (a value of 10⁷ items once made a 35 MB message)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        import reprlib

        brief = reprlib.Repr()
        brief.maxstring = brief.maxother = MAX_SHOWN
        brief.maxlist = brief.maxtuple = brief.maxdict = brief.maxset = 20
        brief.maxlevel = 4
        text = brief.repr(self.value)
        return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _distinct(values: list[Any] | None) -> list[Any] | None:
    """A grid axis lists each value once (a repeated seed or T would train the same run twice)."""
    if values is not None:
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"expected distinct values; given more than once: {repeated}")
    return values


class Budget(BaseModel):
    """How much training a run gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    eval_batch_size: int | None = Field(None, gt=0)
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)
    num_cpus: float = Field(1.0, gt=0, description="Ray resources per run (not part of the spec hash)")
    num_gpus: float = Field(0.0, ge=0)


class BudgetOverride(BaseModel):
    """Per-algorithm changes to a suite budget (unset fields keep the suite's value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    eval_batch_size: int | None = Field(None, gt=0)
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)
    num_cpus: float | None = Field(None, gt=0)
    num_gpus: float | None = Field(None, ge=0)


Track = Literal["controlled", "official", "extra"]
# What every controlled entry shares: resolved spec fields, each with its words in the track's text;
# :func:`controlled_track_problems` checks every one of them (and nothing checks a field not named here)
CONTROLLED_SHARED: dict[str, str] = {
    "arch": "architecture",
    "epochs": "epochs",
    "batch_size": "batch",
    "eval_batch_size": "evaluation batch",
    "train_subset": "training subset",
    "test_subset": "test subset",
    "preprocess": "entry preprocessing",
    "dataset": "dataset",
    "dataset_options": "dataset options",
    "validation": "validation split",
}
TRACKS: dict[str, str] = {
    "controlled": "every method trains the same "
    + ", ".join(list(CONTROLLED_SHARED.values())[:-1])
    + " and "
    + list(CONTROLLED_SHARED.values())[-1]
    + "; the methods differ only in what the method itself defines (neuron, rule, declared encoding, and "
    "the optimiser, input normalisation, outputs per class and extra weights of its definition: columns of "
    "the table)",
    "official": "each method in its own paper's configuration, set beside its published row",
    "extra": "other configurations (method-specific networks, ablations)",
}


class Deviation(BaseModel):
    """Where an entry knowingly differs from the official configuration, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # a key of :func:`resolved_fields` (``lr``, ``batch_size``, ``preprocess.std`` ...) or a prose label
    field: str
    ours: Any = None  # the value the entry resolves to (checked when ``field`` is a resolved field)
    official: Any = None
    reason: str


class FidelityCard(BaseModel):
    """What official configuration an entry mirrors (values and where they were read) and every deviation.

    ``mirrors`` maps resolved fields to the official value; the card-consistency check
    (:func:`card_problems`) fails when a resolved value differs from it without a declared deviation, and
    when a deviation's ``ours`` is not what the entry resolves to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # file (and commit) or table the official values come from
    mirrors: dict[str, Any] = Field(default_factory=dict)
    deviations: list[Deviation] = Field(default_factory=list)
    notes: str = ""


class Preprocess(BaseModel):
    """Per-entry input normalisation ``(x − mean) / std`` per channel, as the method's official code fixes it
    (default: the dataset's published statistics, where a method normalises)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: list[float]
    std: list[float]

    @field_validator("mean")
    @classmethod
    def _float32_mean(cls, value: list[float]) -> list[float]:
        if any(not math.isfinite(v) or abs(v) > FLOAT32_MAX for v in value):
            raise ValueError(f"expected finite numbers of at most {FLOAT32_MAX:.3g} in magnitude (float32)")
        return value

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: list[float]) -> list[float]:
        if not value or any(not math.isfinite(v) or v <= 0 for v in value):
            raise ValueError("expected a non-empty list of positive numbers")
        if any(not FLOAT32_TINY <= v <= FLOAT32_MAX for v in value):  # 1e-300 is 0 in float32: x / 0 = inf
            raise ValueError(f"expected numbers from {FLOAT32_TINY:.3g} to {FLOAT32_MAX:.3g} (float32)")
        return value


class Search(BaseModel):
    """One searched hyperparameter: a numeric range (log-uniform when ``log``) or a list of choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> Search:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either a non-empty `choices` list or `low` and `high`")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("expected `low` < `high` (or `choices`)")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or (self.log and self.low <= 0):
            raise ValueError("expected finite bounds, positive for a log range")
        return self


class AlgorithmEntry(BaseModel):
    """One row of the suite's ``algorithms`` block; keys other than these are the method's hyperparameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    algorithm: str | None = None  # registered method; default: the entry's key
    arch: str
    encoding: str | None = None
    timesteps: Annotated[list[Timestep] | None, AfterValidator(_distinct)] = Field(None, min_length=1)
    budgets: dict[Slug, BudgetOverride] = Field(default_factory=dict)
    track: Track = "official"
    preprocess: Preprocess | None = None
    fidelity: FidelityCard | None = None
    tuned: Tuned | None = None
    # the entry's own search space for `snnbench tune` (replaces the method's declared one): an entry with it
    # is tuned whatever its track (an extra-track set-up's values chosen on validation, in the suite file)
    search: dict[str, Search] | None = Field(None, min_length=1)

    @property
    def hparams(self) -> dict[str, Any]:
        """The method's hyperparameters given in the suite."""
        return dict(self.model_extra or {})


class Energy(BaseModel):
    """Energy per operation for the energy estimate (45 nm defaults, Horowitz 2014)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    e_ac_pj: float = Field(0.9, gt=0.0, le=1e6, description="32-bit float add")
    e_mac_pj: float = Field(4.6, gt=0.0, le=1e6, description="32-bit float multiply-add")  # ≤ 1 µJ per op


class ReferenceRow(BaseModel):
    """A published figure shown beside (never mixed with) measured rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: str
    T: int | None = None
    top1: float
    top1_std: float | None = None
    arch: str | None = None
    source: str
    note: str | None = None
    selection: Literal["best-epoch", "final-epoch", "unknown"] = "unknown"  # how the paper picked its figure
    runs: int | None = Field(None, gt=0)  # mean of how many runs (None: one run or not said)
    read_from: str | None = None  # where exactly the figure was read (table, log file, README line)


class Validation(BaseModel):
    """The validation split carved from the training set (per class, seeded): per-epoch history and every
    model selection use it; the test set is evaluated once, at the end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(0.1, gt=0.0, lt=1.0)
    seed: Seed = 0
    select: bool = False  # also report the test accuracy of the validation-selected epoch (secondary column)


class Tuning(BaseModel):
    """The suite's tuning budget: every entry of a track gets the same number of trials on validation.

    ``per_T: true`` tunes every entry at every T of its grid, each T with the same trials (one record and
    one set of values per T: :class:`Tuned` ``by_T``); a method whose training does not depend on T
    (``training_depends_on_T = False``) is still tuned once, at ``T``. Without it, every entry is tuned once,
    at ``T``, and its values apply at every T (an entry whose grid lacks ``T`` uses its first T)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(gt=0)
    T: Timestep  # the time step the trials train at (an entry whose grid lacks it uses its first T)
    seed: Seed = 0  # the trials' training seed and the sampler's seed
    budget: str | None = None  # default: the suite's default budget
    tracks: list[Track] = Field(default_factory=lambda: ["controlled"])
    per_T: bool = False  # tune at every T of each entry's grid (T-independent methods: once, at T)


class Tuned(BaseModel):
    """Hyperparameters chosen by ``snnbench tune`` (copied from its tuning record), used by ``run``: either
    one set for every T (``values``, ``trials``, ``record``) or one set per T (``by_T: {T: {values, trials,
    record}}``, from a suite whose tuning is ``per_T``); a T that ``by_T`` lacks runs untuned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[str, Any] | None = None
    trials: int | None = Field(None, gt=0)
    record: str = ""  # the tuning record the values come from (path or sha256)
    by_T: dict[Timestep, Tuned] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Tuned:
        if self.by_T is None and (self.values is None or self.trials is None):
            raise ValueError("expected `values` and `trials` (one set for every T) or `by_T` (a set per T)")
        if self.by_T is not None and (self.values is not None or self.trials is not None or self.record):
            raise ValueError("expected either `values`, `trials`, `record` (every T) or `by_T`, not both")
        if self.by_T is not None and any(block.by_T is not None for block in self.by_T.values()):
            raise ValueError("expected `values` and `trials` under each T of `by_T`")
        return self

    def at(self, T: int) -> Tuned | None:
        """The block that applies at ``T`` (None: untuned at ``T``)."""
        return self if self.by_T is None else self.by_T.get(T)

    @property
    def fields(self) -> set[str]:
        """The hyperparameters tuned at some T."""
        blocks = [self] if self.by_T is None else list(self.by_T.values())
        return {name for block in blocks for name in block.values or {}}


class Suite(BaseModel):
    """A benchmark suite: one dataset, a grid of methods × time steps × seeds, and budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    version: int = Field(ge=1)
    description: str = ""
    dataset: str
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    encoding: str | None = None
    timesteps: Annotated[list[Timestep], AfterValidator(_distinct)]
    seeds: Annotated[list[Seed], AfterValidator(_distinct)]
    default_budget: str = "full"
    budgets: dict[Slug, Budget]
    algorithms: dict[Slug, AlgorithmEntry] = Field(min_length=1)
    reference: list[ReferenceRow] = Field(default_factory=list)
    energy: Energy = Field(default_factory=Energy)
    validation: Validation = Field(default_factory=Validation)
    tuning: Tuning | None = None

    @field_validator("timesteps", "seeds")
    @classmethod
    def _non_empty(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("expected a non-empty list")
        return value

    path: str = ""  # where it was loaded from (not part of the file)
    plugin_entries: tuple[
        str, ...
    ] = ()  # entries added by plugins' `suite_entries`, not snnbench's (not in the file)


class RunSpec(BaseModel):
    """One fully resolved run; ``spec_hash`` covers every field that can change its numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: Slug  # suite, entry and budget name files under --out: slugs, so a spec from a record stays inside
    suite_version: int
    entry: Slug  # the suite's label for this method (leaderboard row name)
    algorithm: str
    dataset: str
    dataset_options: dict[str, Any]
    arch: str
    encoding: str
    T: int
    seed: int
    budget: Slug
    epochs: int
    batch_size: int
    eval_batch_size: int
    train_subset: int | None
    test_subset: int | None
    hparams: dict[str, Any]
    track: str = "official"
    preprocess: dict[str, list[float]] | None = None  # per-entry normalisation (None: the dataset's)
    validation: dict[str, Any] = Field(default_factory=dict)  # fraction and seed of the validation split
    tuned_fields: list[str] = Field(default_factory=list)  # hyperparameters whose values came from tuning
    tuning_trials: int | None = None  # the tuning budget behind them
    num_cpus: float = 1.0  # scheduling only: not in the hash
    num_gpus: float = 0.0
    energy: dict[str, float] = Field(default_factory=dict)  # energy constants: not in the hash

    def semantic(self, without_T: bool = False) -> dict[str, Any]:
        """The fields that define the run's numbers, as plain JSON."""
        data = self.model_dump(mode="json", exclude={"num_cpus", "num_gpus", "energy"})
        if without_T:
            data.pop("T")
        return data

    @property
    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`semantic`."""
        return canonical_sha256(self.semantic())

    @property
    def training_key(self) -> str:
        """Hash without T: runs sharing it share training when the method's training ignores T."""
        return canonical_sha256(self.semantic(without_T=True))

    @property
    def run_id(self) -> str:
        """``<entry>_T<T>_s<seed>_<budget>_<hash8>``."""
        return f"{self.entry}_T{self.T}_s{self.seed}_{self.budget}_{self.spec_hash[:8]}"

    @property
    def training_depends_on_T(self) -> bool:
        """Whether this run's training sees T (:func:`training_depends_on_T`); if not, the runs of every T
        with its :attr:`training_key` share one training."""
        return training_depends_on_T(self.algorithm, self.hparams)


def training_depends_on_T(algorithm: str, hparams: dict[str, Any] | None = None) -> bool:
    """Whether ``algorithm``'s training sees T: its class's ``training_depends_on_T``, or, for a method that
    decides it per configuration (a classmethod ``depends_on_T(config)``: stdbp's ``deadline``), that
    decision for ``hparams`` (the class's default when ``hparams`` is None). The runner, the executors, the
    estimate and the tuning all ask here which runs share one training per seed across T."""
    from snnbench.algorithms import algorithms

    cls = algorithms.get(algorithm)
    decide = getattr(cls, "depends_on_T", None)
    if decide is None or hparams is None:
        return bool(cls.training_depends_on_T)
    return bool(decide(cls.Config.model_validate(dict(hparams))))


def canonical_sha256(data: dict[str, Any]) -> str:
    """sha256 of ``data`` as canonical JSON (sorted keys, no whitespace): the same on every machine."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# loading ------------------------------------------------------------------------------------------------
def suite_dirs() -> list[Path]:
    """Where suite names are looked up: ``$SNNBENCH_SUITES``, ``./suites``, the repository's ``suites/``."""
    dirs = [Path(p) for p in os.environ.get(SUITE_DIRS_ENV, "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "suites", Path(__file__).resolve().parent.parent / "suites"]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def suite_names() -> list[str]:
    """Names of all suites found in :func:`suite_dirs`."""
    return sorted({p.stem for d in suite_dirs() for p in d.glob("*.yaml")})


def find_suite(ref: str | Path) -> Path:
    """A suite file path from a name (``digits-lowT``) or a path."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise SnnbenchError(f"suite file {path} does not exist")
        return path
    for directory in suite_dirs():
        candidate = directory / f"{ref}.yaml"
        if candidate.is_file():
            return candidate
    raise UnknownNameError("suite", str(ref), suite_names())


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the last), and
    aliases that expand to more than :data:`MAX_YAML_NODES` values or into themselves (a "billion laughs"
    file of 1 KB would otherwise build 10⁹ values), before anything is built."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        open_: set[int] = set()  # the nodes on the path being walked (depth first)
        pending: list[tuple[yaml.Node, bool]] = [(node, False)]
        while pending:  # expanded size of every node, each counted once (aliases share their node)
            current, children_done = pending.pop()
            if id(current) in sizes:
                continue
            if not children_done and id(current) in open_:
                raise yaml.constructor.ConstructorError(
                    None, None, "an alias refers to a value that contains it", current.start_mark
                )
            children = (
                [n for pair in current.value for n in pair]
                if isinstance(current, yaml.MappingNode)
                else current.value
                if isinstance(current, yaml.SequenceNode)
                else []
            )
            if children_done:
                open_.discard(id(current))
                sizes[id(current)] = 1 + sum(sizes[id(c)] for c in children)
                if sizes[id(current)] > MAX_YAML_NODES:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"aliases expand to over {MAX_YAML_NODES:,} values", current.start_mark
                    )
                continue
            open_.add(id(current))
            pending.append((current, True))
            pending += [(c, False) for c in children if id(c) not in sizes]
        return self.construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_suite(ref: str | Path) -> Suite:
    """Read, validate and cross-check a suite; every error names the file and the field."""
    path = find_suite(ref)
    shown = _display(path)
    try:
        if (size := path.stat().st_size) > MAX_SUITE_BYTES:  # find_suite: a regular file
            raise SuiteError(
                shown, "(file)", f"{size:,} bytes, over the {MAX_SUITE_BYTES >> 20} MiB of a suite file"
            )
        raw = yaml.load(path.read_bytes().decode("utf-8"), Loader=_UniqueKeyLoader)
    except RecursionError:
        raise SuiteError(shown, "(file)", "nested too deeply") from None
    except OSError as exc:
        raise SuiteError(shown, "(file)", f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(
            shown,
            "(file)",
            f"expected UTF-8 text, found byte 0x{exc.object[exc.start]:02x} at offset {exc.start}",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(shown, "(file)", f"not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise SuiteError(shown, "(file)", "expected a mapping of suite fields", type(raw).__name__)
    if (where := _non_finite(raw)) is not None:
        raise SuiteError(shown, where[0], "expected a finite number", where[1])
    if "plugin_entries" in raw:  # set by loading, from the plugins' own `suite_entries`
        raise SuiteError(shown, "plugin_entries", "no such field (plugins add their entries themselves)")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise _suite_error(shown, exc, Suite) from None
    suite = suite.model_copy(update={"path": str(path)})
    suite = _with_plugin_entries(suite, shown)
    # validated values too: a quoted "nan" becomes NaN there, and plugins' entries are not in the file
    if (where := _non_finite(suite.model_dump(mode="python"))) is not None:
        raise SuiteError(shown, where[0], "expected a finite number", where[1])
    try:
        _cross_check(suite, shown)
    except SuiteError as exc:  # an unknown name of 500,000 characters is quoted short
        if len(str(exc)) <= 2 * MAX_SHOWN + 1000:
            raise
        got = None if exc.got is None else _Brief(exc.got)
        raise SuiteError(exc.path, exc.field, exc.expected[:1000] + "…", got) from None
    return suite


def _non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """The field (dotted path) and value of the first NaN or infinity in a suite's data, if any: no setting
    of a suite is meaningful as one (an ``lr: .inf`` was stored as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(file)", value
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, (list, tuple))
        else ()
    )
    for key, item in items:
        if (found := _non_finite(item, f"{where}.{key}" if where else str(key))) is not None:
            return found
    return None


# Shipped methods that normalise their input with ``DatasetInfo.normalize``, where the runner puts an entry's
# ``preprocess`` statistics (:func:`snnbench.runner.data_info`), and when (a predicate on the method's
# Config). Every other method reads the dataset's raw intensities (bptt codes them as spike probabilities)
# and would ignore ``preprocess``: refused at load. A plugin method declares ``reads_preprocess`` (a bool or
# such a predicate) on its class. tests/test_bad_input.py checks this table against the methods' code.
PREPROCESS_READERS: dict[str, Callable[[Any], bool]] = {
    "bntt": lambda config: True,
    "conversion": lambda config: True,
    "ide": lambda config: True,
    "ottt": lambda config: True,
    "s-resnet": lambda config: True,
    "soft-lif": lambda config: True,  # a Conversion: its training and prediction normalise (inherited)
    "spikecaps": lambda config: bool(config.normalize_input),
    "temporal-surrogate-bp": lambda config: bool(config.normalize_input),
    "tssl-bp": lambda config: True,
}


def reads_preprocess(algorithm_cls: type, config: Any) -> bool:
    """Whether the method, so configured, normalises its input with the entry's ``preprocess`` statistics."""
    declared = algorithm_cls.__dict__.get("reads_preprocess")
    if declared is None:
        if not algorithm_cls.__module__.startswith("snnbench."):  # a plugin that declares nothing
            return False
        declared = PREPROCESS_READERS.get(getattr(algorithm_cls, "registry_name", ""), False)
    return bool(declared(config) if callable(declared) else declared)


def _with_plugin_entries(suite: Suite, shown: str) -> Suite:
    """Add the entries that loaded plugin methods declare for this suite (``suite_entries``), so that a
    new method runs on an unchanged suite file; the suite's own entries always win. Methods shipped in
    ``snnbench.algorithms`` inject nothing: every in-house entry is written in its suite file."""
    from snnbench.algorithms import algorithms

    added: dict[str, AlgorithmEntry] = {}
    plugins: list[str] = []  # added by a plugin file or package
    for name in algorithms.names():
        if algorithms.get(name).__module__.startswith("snnbench."):
            continue  # in-house: its entries are in the suite files
        for key, entry in getattr(algorithms.get(name), "suite_entries", {}).get(suite.name, {}).items():
            if key in suite.algorithms:
                continue
            try:
                added[key] = AlgorithmEntry.model_validate({"algorithm": name, **entry})
            except ValidationError as exc:
                raise _suite_error(
                    f"{shown} (plugin {name})", exc, AlgorithmEntry, f"algorithms.{key}."
                ) from None
            plugins.append(key)
    if not added:
        return suite
    return suite.model_copy(
        update={"algorithms": {**suite.algorithms, **added}, "plugin_entries": tuple(plugins)}
    )


def _suite_error(shown: str, exc: ValidationError, model: type[BaseModel], prefix: str = "") -> SuiteError:
    errors = exc.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo explains the rest
    loc = first["loc"]
    if loc and loc[-1] == "[key]":  # a bad mapping key: name the mapping, the key is shown as what was got
        loc = loc[:-2]
    field = prefix + ".".join(str(p) for p in loc)
    expected, got = _describe(first, model)
    return SuiteError(shown, field or "(file)", expected[:1000], None if got is None else _Brief(got))


_EXPECTED = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "missing": "required field is missing",
    "too_short": "expected at least one item",
}


def _describe(error: dict[str, Any], model: type[BaseModel]) -> tuple[str, object | None]:
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, error["loc"])
        name = str(error["loc"][-1])
        hint = UnknownNameError("key", name, allowed).suggestions
        text = "unknown key"
        if hint:
            text += f" (did you mean {' or '.join(repr(h) for h in hint)}?)"
        return f"{text}; allowed: {', '.join(allowed)}", None
    if kind == "missing":
        return _EXPECTED[kind], None
    if kind in _EXPECTED:
        return _EXPECTED[kind], got
    message = error["msg"]
    message = message.replace("Input should be", "expected").replace("Value error, ", "")
    return message[0].lower() + message[1:], got


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that the error location points into."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if annotation is None:
            continue
        target = annotation.annotation
        args = getattr(target, "__args__", ())
        candidates = [a for a in (target, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if candidates:
            current = candidates[0]
    fields = [f for f in getattr(current, "model_fields", {}) if f not in ("path", "plugin_entries")]
    return sorted(fields)


def _cross_check(suite: Suite, shown: str) -> None:
    """Names against the registries and hyperparameters against each method's Config."""
    from snnbench.algorithms import algorithms
    from snnbench.architectures import resolve_architecture
    from snnbench.data import datasets
    from snnbench.data.encoding import encodings

    try:
        dataset_cls = datasets.get(suite.dataset)
    except UnknownNameError as exc:
        raise SuiteError(shown, "dataset", str(exc)) from None
    try:
        dataset_cls.Options.model_validate(suite.dataset_options)
    except ValidationError as exc:
        raise _suite_error(shown, exc, dataset_cls.Options, "dataset_options.") from None
    if suite.encoding is not None and suite.encoding not in encodings:
        raise SuiteError(
            shown, "encoding", str(UnknownNameError("encoding", suite.encoding, encodings.names()))
        )
    if suite.default_budget not in suite.budgets:
        raise SuiteError(
            shown, "default_budget", f"expected one of {sorted(suite.budgets)}", suite.default_budget
        )
    for key, entry in suite.algorithms.items():
        where = f"algorithms.{key}"
        name = entry.algorithm or key
        try:
            algorithm_cls = algorithms.get(name)
        except UnknownNameError as exc:
            raise SuiteError(shown, where + (".algorithm" if entry.algorithm else ""), str(exc)) from None
        try:
            algorithm_cls.Config.model_validate(entry.hparams)
        except ValidationError as exc:
            raise _suite_error(shown, exc, algorithm_cls.Config, where + ".") from None
        try:
            arch = resolve_architecture(entry.arch)
        except SnnbenchError as exc:
            raise SuiteError(shown, where + ".arch", str(exc)) from None
        except ValueError:  # a size of thousands of digits (int() refuses them)
            raise SuiteError(shown, where + ".arch", "expected layer sizes of at most 6 digits") from None
        for layer in arch.layers:
            sizes = [v for v in vars(layer).values() if isinstance(v, int) and not isinstance(v, bool)]
            if any(v > MAX_LAYER_SIZE for v in sizes):
                expected = f"layer sizes from 1 to {MAX_LAYER_SIZE:,} (a typo, not a network)"
                raise SuiteError(shown, where + ".arch", expected, _Brief(entry.arch))
        if entry.encoding is not None and entry.encoding not in encodings:
            raise SuiteError(
                shown,
                where + ".encoding",
                str(UnknownNameError("encoding", entry.encoding, encodings.names())),
            )
        for budget in entry.budgets:
            if budget not in suite.budgets:
                raise SuiteError(
                    shown, f"{where}.budgets.{budget}", f"expected one of {sorted(suite.budgets)}"
                )
        blocks = (
            {}
            if entry.tuned is None
            else {"": entry.tuned}
            if entry.tuned.by_T is None
            else {f"by_T.{T}.": block for T, block in entry.tuned.by_T.items()}
        )
        for prefix, block in (blocks or {"": None}).items():  # untuned: the entry's own values
            tuned = {} if block is None else (block.values or {})
            try:
                config = algorithm_cls.Config.model_validate({**entry.hparams, **tuned})
            except ValidationError as exc:
                raise _suite_error(
                    shown, exc, algorithm_cls.Config, f"{where}.tuned.{prefix}values."
                ) from None
            # the values as the method gets them: pydantic reads the strings "inf" and "nan" (YAML's plain
            # `inf`) as floats, which the file's own walk (load_suite) cannot see
            if (found := _non_finite(config.model_dump(mode="python"))) is not None:
                field = found[0].split(".")[0]
                place = f"{where}.tuned.{prefix}values." if field in tuned else f"{where}."
                raise SuiteError(shown, place + found[0], "expected a finite number", found[1])
            if entry.preprocess is not None and not reads_preprocess(algorithm_cls, config):
                raise SuiteError(
                    shown,
                    where + ".preprocess",
                    f"{name} does not normalise its input, so it would ignore preprocess (it reads the "
                    "dataset's raw intensities); remove preprocess from this entry",
                )
        if entry.preprocess is not None and not (
            len(entry.preprocess.mean)
            == len(entry.preprocess.std)
            == dataset_cls().info(dataset_cls.Options.model_validate(suite.dataset_options)).input_shape[0]
        ):
            raise SuiteError(shown, where + ".preprocess", "expected one mean and one std per input channel")
    if suite.tuning is not None and (suite.tuning.budget or suite.default_budget) not in suite.budgets:
        raise SuiteError(
            shown, "tuning.budget", f"expected one of {sorted(suite.budgets)}", suite.tuning.budget
        )
    for problem in controlled_track_problems(suite) + card_problems(suite):
        raise SuiteError(shown, problem[0], problem[1])
    for i, row in enumerate(suite.reference):
        if row.algorithm not in suite.algorithms and row.algorithm not in algorithms:
            raise SuiteError(
                shown,
                f"reference.{i}.algorithm",
                str(UnknownNameError("algorithm", row.algorithm, list(suite.algorithms))),
            )


# tracks and fidelity cards ------------------------------------------------------------------------------
def resolved_fields(suite: Suite, key: str, budget: str | None = None) -> dict[str, Any]:
    """What entry ``key`` resolves to, flat, as a fidelity card names it: every hyperparameter (paper default,
    suite value or tuned value), ``arch``, ``encoding``, ``timesteps``, ``epochs``, ``batch_size`` (of
    ``budget``, default the suite's), ``preprocess.mean``/``preprocess.std`` and ``dataset.<option>``."""
    specs = expand(suite, Overrides(budget=budget, algorithms=[key]))
    spec = specs[0]
    fields: dict[str, Any] = dict(spec.hparams)
    fields.update(
        arch=spec.arch,
        encoding=spec.encoding,
        timesteps=sorted({s.T for s in specs}),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
    )
    if spec.preprocess is not None:
        fields.update({f"preprocess.{k}": v for k, v in spec.preprocess.items()})
    fields.update({f"dataset.{k}": v for k, v in spec.dataset_options.items()})
    return fields


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


TUNED_PER_T = "tuned per T"  # a deviation's ``ours``: the field's value is set at each T by ``tuned.by_T``


def card_problems(suite: Suite) -> list[tuple[str, str]]:
    """``(field, problem)`` for every fidelity-card claim that the entry's resolved configuration contradicts:
    a mirrored value that differs without a declared deviation, or a deviation whose ``ours`` is not what the
    entry resolves to (``ours: tuned per T`` for a field the entry's ``tuned.by_T`` block sets: exactly
    those fields)."""
    problems: list[tuple[str, str]] = []
    for key, entry in suite.algorithms.items():
        card = entry.fidelity
        if card is None:
            continue
        fields = resolved_fields(suite, key)
        where = f"algorithms.{key}.fidelity"
        declared = {d.field for d in card.deviations}
        for name, official in card.mirrors.items():
            if name not in fields:
                problems.append(
                    (f"{where}.mirrors.{name}", f"not a resolved field; known: {', '.join(fields)}")
                )
            elif not _same(fields[name], official) and name not in declared:
                problems.append(
                    (
                        f"{where}.mirrors.{name}",
                        f"the entry resolves to {fields[name]!r}, the card says the official value "
                        f"{official!r} is mirrored; fix the entry or declare a deviation",
                    )
                )
        per_T = set(entry.tuned.fields) if entry.tuned is not None and entry.tuned.by_T is not None else set()
        for i, deviation in enumerate(card.deviations):
            if deviation.ours == TUNED_PER_T:
                if deviation.field not in per_T:
                    problem = f"{deviation.field} is not tuned per T in this entry"
                    problems.append((f"{where}.deviations.{i}.ours", problem))
            elif deviation.field in fields and not _same(fields[deviation.field], deviation.ours):
                problems.append(
                    (
                        f"{where}.deviations.{i}.ours",
                        f"the entry resolves {deviation.field} to {fields[deviation.field]!r}, "
                        f"not {deviation.ours!r}",
                    )
                )
    return problems


def controlled_track_problems(suite: Suite) -> list[tuple[str, str]]:
    """The controlled track's promise: every entry in it resolves to the same value of every field of
    :data:`CONTROLLED_SHARED` (architecture, budget, entry preprocessing, data) under every budget; what may
    differ is only what the method defines (the leaderboard's :mod:`snnbench.setups` columns show it)."""
    keys = [k for k, e in suite.algorithms.items() if e.track == "controlled"]
    problems: list[tuple[str, str]] = []
    for budget in suite.budgets:
        shared: dict[str, tuple[str, Any]] = {}
        for key in keys:
            spec = expand(suite, Overrides(budget=budget, algorithms=[key]))[0]
            for name in CONTROLLED_SHARED:
                value = getattr(spec, name)
                first = shared.setdefault(name, (key, value))
                if value != first[1]:
                    problems.append(
                        (
                            f"algorithms.{key}",
                            f"controlled track: {name} (budget {budget}) is {value!r} but "
                            f"{first[0]!r} has {first[1]!r}; every controlled entry must share it (move "
                            "method-specific set-ups to the official or extra track)",
                        )
                    )
    return problems


# expansion ----------------------------------------------------------------------------------------------
class Overrides(BaseModel):
    """What the command line may change; ``None`` = not given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: str | None = None
    algorithms: list[str] | None = None
    timesteps: Annotated[list[Timestep] | None, AfterValidator(_distinct)] = None
    seeds: Annotated[list[Seed] | None, AfterValidator(_distinct)] = None


def expand(suite: Suite, overrides: Overrides | None = None) -> list[RunSpec]:
    """The grid entries × T × seeds as fully resolved specs (CLI > suite block > suite > paper defaults)."""
    from snnbench.algorithms import algorithms
    from snnbench.architectures import resolve_architecture

    overrides = overrides or Overrides()
    budget_name = overrides.budget or suite.default_budget
    if budget_name not in suite.budgets:
        shown = _display(Path(suite.path)) if suite.path else suite.name
        raise SuiteError(shown, "budgets", str(UnknownNameError("budget", budget_name, suite.budgets)))
    selected = list(suite.algorithms)
    if overrides.algorithms is not None:
        for name in overrides.algorithms:
            if name not in suite.algorithms:
                raise UnknownNameError(f"algorithm in suite {suite.name}", name, suite.algorithms)
        selected = [k for k in selected if k in overrides.algorithms]
    specs: list[RunSpec] = []
    for key in selected:
        entry = suite.algorithms[key]
        algorithm_cls = algorithms.get(entry.algorithm or key)
        budget = suite.budgets[budget_name].model_dump()
        if budget_name in entry.budgets:
            budget.update(entry.budgets[budget_name].model_dump(exclude_none=True))
        timesteps = overrides.timesteps or entry.timesteps or suite.timesteps
        seeds = overrides.seeds if overrides.seeds is not None else suite.seeds
        for T in timesteps:
            block = entry.tuned.at(T) if entry.tuned is not None else None  # per-T tuned values: T's own
            tuned = block.values or {} if block is not None else {}
            config = algorithm_cls.Config.model_validate({**entry.hparams, **tuned})
            for seed in seeds:
                specs.append(
                    RunSpec(
                        suite=suite.name,
                        suite_version=suite.version,
                        entry=key,
                        algorithm=algorithm_cls.registry_name,
                        dataset=suite.dataset,
                        dataset_options=suite.dataset_options,
                        arch=resolve_architecture(entry.arch).name,
                        encoding=entry.encoding or suite.encoding or algorithm_cls.default_encoding,
                        T=T,
                        seed=seed,
                        budget=budget_name,
                        epochs=budget["epochs"],
                        batch_size=budget["batch_size"],
                        eval_batch_size=budget["eval_batch_size"] or max(budget["batch_size"], 256),
                        train_subset=budget["train_subset"],
                        test_subset=budget["test_subset"],
                        hparams=config.model_dump(mode="json"),
                        track=entry.track,
                        preprocess=entry.preprocess.model_dump() if entry.preprocess is not None else None,
                        validation=suite.validation.model_dump(),
                        tuned_fields=sorted(tuned),
                        tuning_trials=block.trials if block is not None else None,
                        num_cpus=budget["num_cpus"],
                        num_gpus=budget["num_gpus"],
                        energy=suite.energy.model_dump(),
                    )
                )
    return specs
