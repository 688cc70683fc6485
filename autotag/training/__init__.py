"""Training: the LightningModule (binary cross-entropy, Adam), the Trainer with its
callbacks, checkpoint writes and TensorBoard logger, `fit` (train, evaluate the best
checkpoint, tune thresholds), metrics, DDP rank handling and SLURM job scripts.
"""
