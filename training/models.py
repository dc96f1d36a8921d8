"""Training runs, model versions and predictions: built in the training issues."""
