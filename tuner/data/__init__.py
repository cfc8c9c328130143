"""Datasets: what a dataset is (spec), where it comes from (catalog), and how each
task reads it (series for forecasting, sequences for classification, text for
character models), cut into windows."""
