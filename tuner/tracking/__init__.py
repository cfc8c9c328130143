"""MLflow: tracking URIs, runs of a study and its trials, logged models."""
