"""The model a study leaves behind: bundles on disk, predictions from them, and
the MLflow pyfunc wrapper."""
