"""Benchmarks beside llama.cpp: parse, kernels, forward, runtime (`ggufsm bench`)."""
