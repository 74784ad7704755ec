"""CTR models: the factorization-model family and (next) AutoFIS and AIM."""

from aim.models.factorization import FM, IPNN, LR, DeepFM, FwFM

MODELS = {"lr": LR, "fm": FM, "fwfm": FwFM, "deepfm": DeepFM, "ipnn": IPNN}

__all__ = ["FM", "IPNN", "LR", "MODELS", "DeepFM", "FwFM"]
