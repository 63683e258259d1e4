"""TFX component code for the chest X-ray pipeline: ingestion, Transform and Trainer modules."""
