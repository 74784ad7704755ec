"""Prefect 3 flows over the ``aim`` library: the same stage functions the DVC stages call."""
