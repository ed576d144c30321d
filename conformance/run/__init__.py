"""Execution: running the planned suite against an implementation.

Everything that touches a running implementation lives here: calls through
an adapter, the threads that make calls overlap, retries of a lost race,
time limits, and the verdicts.

- ``checks``: judging one reply, and the state it left, against an Expected
- ``overlap``: two calls on one handle, the second sent while the first runs
- ``cells``: running one planned case (a table cell's branch)
- ``behaviours``: the behavioural rules' checks
- ``walk``: random walks with the table as oracle (Hypothesis)
- ``runner``: every case on a fresh runtime, each outcome recorded
"""
