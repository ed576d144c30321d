"""ggufsm.conformance: the conformance kit.

``plan`` derives the suite from the table (pure data, also shipped as
``suite.json``); ``run`` executes it against an implementation through the
adapter API (``adapter``, ``adapters``) or the JSON-lines protocol
(``protocol``); ``fixtures`` writes the models the cases load.
"""
