"""CTR models: the factorization-model family, and the gated model of AutoFIS and AIM."""

from aim.models.factorization import FM, IPNN, LR, DeepFM, FwFM
from aim.models.gated import GatedInteractions, gated_from_config

BASE_MODELS = {"lr": LR, "fm": FM, "fwfm": FwFM, "deepfm": DeepFM, "ipnn": IPNN}
MODELS = {**BASE_MODELS, "gated": gated_from_config}  # every builder a checkpoint config may name

__all__ = ["BASE_MODELS", "FM", "IPNN", "LR", "MODELS", "DeepFM", "FwFM", "GatedInteractions", "gated_from_config"]
