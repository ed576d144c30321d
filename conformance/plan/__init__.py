"""Planning: the suite derived from the table, as data.

Pure table work: shortest paths over the table's transitions, the concrete
calls that make each branch's guards hold, and the outcome each call must
have. Nothing here imports what runs an implementation (adapters, processes,
threads); ``ggufsm.conformance.run`` executes these plans, and
``suite_file`` writes them out for harnesses in other languages
(``conformance/suite.json``).

- ``recipes``: guard values -> concrete calls (and the suite's inputs)
- ``expected``: what the table says one call yields
- ``paths``: nodes, steps and shortest paths over the table's transitions
- ``cases``: one case per branch of every cell, with its concurrency arrangement
- ``walk_model``: what a random walk knows of the runtime it drives, and its choices
- ``behaviours``: the behavioural rules, as data
- ``suite_file``: the suite as a JSON document, and back
"""
