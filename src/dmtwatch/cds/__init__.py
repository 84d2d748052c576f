"""The CDS Hooks 2.0 service: one patient's findings as cards when a chart is opened.

`create_app()` builds the FastAPI app that `dmtwatch serve` runs; the models follow the
specification's JSON so its own examples parse and round-trip (tests/test_cds.py).
"""
