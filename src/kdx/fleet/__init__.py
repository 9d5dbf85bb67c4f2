"""The fleet triage service: ``kdx serve`` takes in dumps, analyses them and buckets them.

Layers, each behind a small interface so the scale-out (Celery, PostgreSQL, S3) swaps one
adapter and nothing else:

- ``records``: plain typed records every layer exchanges (a dump, a job, a problem);
- ``service``: the ``Fleet`` facade the web app, the API and the CLI clients call;
- ``store`` (dump bytes), ``db`` (records, migrations), ``queue`` (jobs and workers):
  the embedded defaults are a directory, SQLite and local worker processes;
- ``pipeline``: what a worker does with one dump (fast pass, then the full analysis);
- ``web``: pages, the ``/api/v1`` JSON API and ``/metrics``; ``cli``: ``kdx serve``,
  ``kdx submit``, ``kdx dumps``, ``kdx problems``.
"""
