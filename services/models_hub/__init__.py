"""models_hub: models, versions, uploads, validation, providers, fine-tunes, likes."""
