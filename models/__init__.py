"""Model definitions and training for the jobs that serve models (image_inference)."""
