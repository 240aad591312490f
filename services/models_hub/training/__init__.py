"""The training process a fine-tune worker runs (torch, transformers, peft), and its runner."""
