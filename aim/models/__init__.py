"""CTR models: the factorization-model family, and the gated model of AutoFIS and AIM."""

from aim.models.factorization import FM, IPNN, LR, DeepFM, FwFM
from aim.models.gated import GatedInteractions, gated_from_config

MODELS = {"lr": LR, "fm": FM, "fwfm": FwFM, "deepfm": DeepFM, "ipnn": IPNN, "gated": gated_from_config}

__all__ = ["FM", "IPNN", "LR", "MODELS", "DeepFM", "FwFM", "GatedInteractions", "gated_from_config"]
