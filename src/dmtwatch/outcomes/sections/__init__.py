"""The audit's sections, one module each. A section is a typed result, as a lifelines
fitter is: `Section.compute(ctx)` does its calculation on the clinic; the object then
carries its numbers (the fields, exactly the keys of its part of the audit JSON),
`.to_dict()`, `.summary` (a DataFrame of its key figures), `.plot()` (its figure as SVG,
or None), `.methods` (its Methods paragraphs) and what the report shows (`.view()`,
`.brief()`, `.appendix()`). `Section.from_dict()` reads the section back from audit JSON,
so a report can be rendered from a saved result.
"""
