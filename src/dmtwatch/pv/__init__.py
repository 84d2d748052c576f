"""Pharmacovigilance: disproportionality signal detection on spontaneous reports."""
