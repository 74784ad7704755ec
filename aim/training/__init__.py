"""Training: batches from the prepared arrays, the loop with early stopping, metrics, checkpoints."""
