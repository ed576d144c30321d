"""The runtime's `ggufsm` subcommands: generate, chat, demo, inspect, tokenize, models, cache, bench."""
