"""HL7 FHIR R4: the clinic's FHIR data in (Bundles, Bulk Data NDJSON, a server), findings out.

R4 models come from fhir.resources' R4B package, imported explicitly: its default
package is R5, whose shapes differ (e.g. MedicationStatement.medication).
"""
