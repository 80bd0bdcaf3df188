"""Structural pruning: vocabulary, decoder layers, FFN neurons, attention heads."""
