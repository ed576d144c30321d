"""ggufsm.spec: the lifecycle table and everything derived from it."""
