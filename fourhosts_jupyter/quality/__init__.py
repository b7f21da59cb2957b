"""Answers that improve: evaluation and confidence (``checks``, ``judge``), self-healing
(``heal``), host collaboration (``collaborate``), composed after one run's answer by ``stage``.

Brief §2.6–§2.7. Everything here sits above the engine: it is called once per run from a
post-answer hook and speaks to the views only through typed events (``events.py``).
"""
