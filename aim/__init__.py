"""aim-ctr: the Automatic Interaction Machine for CTR prediction, as a production pipeline."""

__version__ = "0.1.0"
