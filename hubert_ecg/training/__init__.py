"""Training: data (manifests -> datasets.Dataset), fine-tuning with the Trainer, evaluation, k-means targets and
HuBERT pretraining with accelerate. Imported lazily by the CLI; nothing here is needed for inference."""
