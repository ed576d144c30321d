"""Model bytes to a validated, installable model: the GGUF file, the registry of real models, the load."""
