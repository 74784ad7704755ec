"""Building blocks: tensors in, tensors out. Nothing here knows about files or pipelines."""
