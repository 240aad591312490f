"""Fine-tune jobs: datasets, hyperparameters, progress, cancel, events."""
