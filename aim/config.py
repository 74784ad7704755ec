"""One typed configuration object, loaded from ``params.yaml`` and passed down.

No other module reads ``params.yaml``. Relative paths in the file are relative to the folder
that holds it; :meth:`Params.path` resolves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from aim.errors import ConfigError

SourceName = Literal["ml100k", "criteo", "avazu", "table", "planted", "synthetic_criteo"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelRule(_Strict):
    """How the click label is derived from a column: ``binary`` (values must be 0 or 1) or a
    comparison with ``value`` (e.g. ``rating >= 4``)."""

    column: str
    rule: Literal["binary", ">=", ">", "<=", "<", "==", "!="] = "binary"
    value: float | None = None

    @model_validator(mode="after")
    def _value_for_comparisons(self) -> LabelRule:
        if self.rule != "binary" and self.value is None:
            raise ValueError(f"label rule '{self.rule}' needs a 'value' to compare with")
        return self


class TimestampSpec(_Strict):
    """Event time column: integer epoch seconds, or text parsed with a strptime ``format``."""

    column: str
    format: str | None = None


class TableSourceConfig(_Strict):
    """Any CSV or parquet file with a binary label and categorical / numeric / multi-hot fields."""

    path: Path = Path("data/raw/table.csv")
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = ","
    header: bool = True
    label: LabelRule = LabelRule(column="label")
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    multi_hot: dict[str, str] = Field(default_factory=dict, description="multi-hot column -> token separator")
    timestamp: TimestampSpec | None = None
    entities: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_fields(self) -> TableSourceConfig:
        if not (self.categorical or self.numeric or self.multi_hot):
            raise ValueError("a table source needs at least one categorical, numeric or multi_hot field")
        return self


class FileSourceConfig(_Strict):
    """A Criteo (TSV, no header) or Avazu (CSV with header) file."""

    path: Path


class ML100kConfig(_Strict):
    """MovieLens-100k; ``path`` overrides the copy inside the installed recbole wheel."""

    path: Path | None = None
    click_threshold: float = 4.0


class PlantedConfig(_Strict):
    """The AutoFIS section 4.5.2 generator: m fields of N values, planted pairs (and triple)."""

    fields: int = Field(6, ge=2)
    values: int = Field(60, ge=2)
    pairs: list[tuple[int, int]] = Field(default_factory=lambda: [(0, 1), (2, 5), (3, 4)])
    triple: tuple[int, int, int] | None = None
    rows: int = Field(100_000, ge=10)
    linear_scale: float = 0.5
    pair_scale: float = 1.0
    triple_scale: float = 1.0
    noise: float = Field(0.1, ge=0)
    positive_rate: float = Field(0.5, gt=0, lt=1)
    dir: Path = Path("data/raw/planted")


class SyntheticCriteoConfig(_Strict):
    """Criteo-shaped generator: 13 integer and 26 categorical fields with Zipf frequencies."""

    rows: int = Field(1_000_000, ge=10)
    max_vocab: int = Field(1_000_000, ge=10)
    zipf_exponent: float = Field(1.1, gt=1.0)
    missing_rate: float = Field(0.05, ge=0, lt=1)
    path: Path = Path("data/raw/criteo_synthetic.tsv")


class SplitConfig(_Strict):
    """Train/valid/test shares; ``auto`` splits by time when the source has a timestamp."""

    method: Literal["auto", "time", "random"] = "auto"
    train: float = Field(0.8, gt=0, lt=1)
    valid: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"split shares must sum to 1, got {total:g}")
        return self


class NumericConfig(_Strict):
    """How numeric fields become categories: ``log_square`` (Criteo winners) or ``quantile``."""

    bucketing: Literal["log_square", "quantile"] = "log_square"
    quantile_buckets: int = Field(20, ge=2)


class DataConfig(_Strict):
    """Everything the ``prepare`` stage reads."""

    source: SourceName = "ml100k"
    min_count: int = Field(2, ge=1)
    numeric: NumericConfig = NumericConfig()
    multi_hot_max_len: int = Field(8, ge=1)
    split: SplitConfig = SplitConfig()
    max_quarantine_share: float = Field(0.1, ge=0, le=1)
    output_dir: Path = Path("data/prepared")
    warehouse: Path = Path("data/warehouse.duckdb")
    batch_rows: int = Field(262_144, ge=1024)
    parquet_compression: Literal["lz4", "snappy", "zstd", "none"] = "lz4"
    duckdb_memory_limit: str = "2GB"
    threads: int = Field(0, ge=0, description="0 = all cores")
    ml100k: ML100kConfig = ML100kConfig()
    criteo: FileSourceConfig = FileSourceConfig(path=Path("data/raw/criteo.tsv"))
    avazu: FileSourceConfig = FileSourceConfig(path=Path("data/raw/avazu.csv"))
    table: TableSourceConfig | None = None
    planted: PlantedConfig = PlantedConfig()
    synthetic_criteo: SyntheticCriteoConfig = SyntheticCriteoConfig()


class ModelConfig(_Strict):
    """Knobs every model shares: embedding width and the MLP."""

    dim: int = Field(16, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [128, 64])
    dropout: float = Field(0.0, ge=0, lt=1)


class TrainConfig(_Strict):
    """Adam and early stopping on validation AUC (restore-best)."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(1e-3, gt=0)
    patience: int = Field(2, ge=0)


class GRDAConfig(_Strict):
    """GRDA for the gates: step size, threshold scale c and its growth μ (0 < μ < 1)."""

    lr: float = Field(0.1, gt=0)
    c: float = Field(0.3, ge=0)
    mu: float = Field(0.8, gt=0, lt=1)


Variant = Literal["aim", "aim_eds", "aim_ifs_eds", "autofm", "autodeepfm"]


class SearchConfig(_Strict):
    """The two search stages (one-level: GRDA on the gates, Adam on the rest, same mini-batch)."""

    variant: Variant = "aim"
    max_order: int = Field(3, ge=2, le=4)
    top_k: int | None = Field(None, ge=1, description="order-p pool width; null = ⌊n/2⌋ (the paper)")
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(1e-3, gt=0)
    alpha_init: float = 0.6
    beta_init: float = 0.6
    interaction_grda: GRDAConfig = GRDAConfig()
    embed_grda: GRDAConfig = GRDAConfig(c=0.5)


class RetrainConfig(_Strict):
    """The model that ships: kept rows with fresh α, narrow tables, an MLP on top."""

    alpha_init: float | None = Field(None, description="null = start from the searched α")


class EvaluateConfig(_Strict):
    """Which trained models ``aim evaluate`` scores on the test split (null = every one found)."""

    models: list[str] | None = None
    batch_size: int = Field(8192, ge=1)


class ValidateConfig(_Strict):
    """Great Expectations checks on every prepared split before anything trains on it."""

    max_positive_rate_shift: float = Field(0.1, ge=0, le=1, description="|split rate - train rate| allowed")
    max_oov_rate: float = Field(0.5, ge=0, le=1, description="share of out-of-vocabulary ids allowed per field")
    oov_rate_overrides: dict[str, float] = Field(default_factory=dict, description="field -> its own OOV bound")
    docs_dir: Path = Path("artifacts/validation")
    quarantine_dir: Path = Path("data/quarantine")
    chunk_rows: int = Field(1_000_000, ge=1000, description="a split with more rows is validated chunk by chunk")


class FeaturesConfig(_Strict):
    """Feast: entity feature views over warehouse exports; training sets by point-in-time joins."""

    enabled: bool = True
    repo: Path = Path("features")
    project: str = Field("aim_ctr", pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$", description="Feast project name")
    store_dir: Path = Path("data/feast")
    output_dir: Path = Path("data/features")
    views: dict[str, list[str]] | None = Field(
        None, description="entity column -> its attribute fields; null = every field that depends on it alone"
    )
    ttl_days: int = Field(3650, ge=1)
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_connection: str = "localhost:6379"
    registry: str | None = Field(None, description="SQL registry URL (e.g. postgresql://...); null = file")
    chunk_rows: int = Field(500_000, ge=1000, description="entity rows per point-in-time join")


class PromoteConfig(_Strict):
    """The gate: the challenger replaces production only if it beats the control significantly."""

    challenger: str | None = Field(None, description="null = search.variant")
    control: str = "deepfm"
    min_delta: float = Field(0.0, ge=0, description="required test-AUC gain over the control")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the paired test")
    test: Literal["delong", "bootstrap"] = "delong"
    bootstrap_samples: int = Field(1000, ge=100)
    registry: Path = Path("models/registry")


class ServeConfig(_Strict):
    """The scoring service: arms by a stable hash of the user id, models from the registry."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    treatment_share: float = Field(0.07, ge=0, le=1, description="share of users on the AIM challenger (paper: 7%)")
    salt: str = Field("aim-ab-1", description="changing it reshuffles users between arms")
    max_candidates: int = Field(1000, ge=1)
    impressions: Path = Path("data/impressions.duckdb")
    flush_rows: int = Field(5000, ge=1, description="impressions buffered before a write")
    user_entity: str = Field("user_id", description="entity whose key is the request's user_id")
    item_entity: str = Field("item_id", description="entity whose keys are the request's item_ids")
    lookup: Literal["feast", "memory"] = Field(
        "feast", description="feast = online store; memory = latest values held in memory (benchmarks)"
    )
    threads: int = Field(1, ge=1, description="torch intra-op threads (small batches: 1 is fastest)")


class ReplayConfig(_Strict):
    """Replay of the held-out test window through the running service."""

    split: Literal["valid", "test"] = "test"
    windows: int = Field(4, ge=1, description="equal time windows the replayed split is cut into")
    max_requests: int = Field(2000, ge=1)
    output_dir: Path = Path("data/replay")


class MonitorConfig(_Strict):
    """Evidently reports per replay window: drift, per-arm quality, A/B against the control."""

    workspace: Path = Path("monitoring/workspace")
    reports_dir: Path = Path("artifacts/monitoring")
    project: str = "aim-ctr"
    drift_share: float = Field(0.5, gt=0, le=1, description="fail when this share of columns drifted")
    non_inferiority_margin: float = Field(0.01, ge=0, description="challenger AUC may trail the control by this")
    max_prediction_psi: float = Field(0.2, gt=0)
    top_k: int = Field(5, ge=1)
    bootstrap_samples: int = Field(500, ge=100)
    trigger_retrain: bool = False
    ci_level: float = Field(0.95, gt=0, lt=1, description="two-sided level of the bootstrap intervals")
    reference_rows: int = Field(20_000, ge=100, description="seeded sample of the training split for drift")
    drift_method: str | None = Field(None, description="Evidently drift method for the fields; null = its default")
    drift_threshold: float | None = Field(None, gt=0, description="threshold of drift_method; null = its default")


class ComputeConfig(_Strict):
    """How training runs on the hardware (compile/autocast/threads keep results to float tolerance;
    sparse embeddings switch the tables to lazy Adam, which moves only the rows a batch touches)."""

    sparse_embeddings: bool | Literal["auto"] = Field(
        "auto", description="row-wise lazy Adam on sparse embedding gradients; auto = tables of 100k rows or more"
    )
    compile: bool = Field(False, description="torch.compile the models (needs a C++ compiler on CPU)")
    autocast: Literal["auto", "bf16", "off"] = Field("auto", description="auto = bf16 on CUDA, off on CPU")
    threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")
    cpu_kernels: Literal["auto", "off"] = Field(
        "auto", description="auto = fused C++ kernels for interaction rows on CPU (built once; needs a C++ compiler)"
    )


class Params(_Strict):
    """The whole ``params.yaml``."""

    seed: int = 2026
    device: str = Field("auto", description="auto (cuda when available) | cpu | cuda | cuda:N")
    artifacts: Path = Path("artifacts")
    metrics: Path = Path("metrics")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig()
    retrain: RetrainConfig = RetrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    validation: ValidateConfig = ValidateConfig()
    features: FeaturesConfig = FeaturesConfig()
    promote: PromoteConfig = PromoteConfig()
    serve: ServeConfig = ServeConfig()
    replay: ReplayConfig = ReplayConfig()
    monitor: MonitorConfig = MonitorConfig()
    compute: ComputeConfig = ComputeConfig()
    _root: Path = PrivateAttr(default_factory=Path.cwd)

    def path(self, p: Path | str) -> Path:
        """Resolve a path from the configuration against the folder of ``params.yaml``."""
        p = Path(p)
        return p if p.is_absolute() else self._root / p

    def training_dir(self) -> Path:
        """Where the model stages read their arrays: the Feast-assembled sets, or the prepared ones."""
        return self.path(self.features.output_dir if self.features.enabled else self.data.output_dir)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{key}' is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """Turn ``["data.source=criteo", "seed=3"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_params(path: Path | str = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Load and validate ``params.yaml`` with optional ``a.b=value`` overrides."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: run from the project root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(raw).__name__}")
    raw = _merge(raw, parse_overrides(overrides))
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
    params._root = path.resolve().parent
    return params
