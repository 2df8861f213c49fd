"""Training: settings (``config``), the loop (``loop.fit``) and its ``callbacks``, a whole run (``train``) kept in a
run folder (``run``), ``checkpoint``s, ``distributed`` data parallelism, ``evaluate``, ``recipes``, ``reproduce``
(the course's experiments) and ``bench`` (speed)."""
