"""The data layer: sources, validation of raw lines, encoding, splits and model-ready arrays."""
