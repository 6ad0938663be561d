"""Benchmarks of keras_taylor; run each as `python -m benchmarks.<name>`."""
