"""Choosing hyperparameters on validation data carved from training data, never on test."""
