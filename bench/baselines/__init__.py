"""Baselines the kernel is measured against, in the same run."""
