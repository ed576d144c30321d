"""Tokenizers built from GGUF metadata (byte-level BPE, SentencePiece) and chat templates."""
