"""Adapters: the reference runtime, protocol children, and peer runtimes."""
