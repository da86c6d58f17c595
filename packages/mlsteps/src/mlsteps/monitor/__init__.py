"""Monitoring a served model from its inference log (``python src/main.py monitor``): drift of each input and of
the predictions against the training data, data quality, the log's own volume, errors and latency, and, once
labels arrive, the live metrics. ``mlsteps.monitor.run`` ties it together; the figures are pure functions of
arrays (``mlsteps.monitor.stats``)."""
