"""ggufsm.conformance: suite generation, runner, adapters and the JSON-lines protocol."""
