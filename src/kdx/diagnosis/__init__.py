"""Diagnosis: turn a dump into a verdict — what happened, where, and the evidence.

``rules`` holds the data that recognises each kind of death, ``signature`` the bucketing
key, ``verdict`` the versioned records a database can store, ``analyze`` the engine.
"""
