"""Keras models: built-in-layer blocks, the builder a search space drives, the
training loop of one trial, and sampling from a character model."""
