"""Vision plugin: image-classification models, datasets and metrics."""
