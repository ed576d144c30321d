"""ggufsm.reference: the reference runtime (GGUF loading, tokenizers, architectures, sampling, Runtime)."""
