"""A synthetic MS clinic: the tables a clinic would export, drawn from published rates.

    from dmtwatch.synth import generate, write_csv
    tables = generate(n_patients=300, seed=7)          # dict[str, pyarrow.Table]
    write_csv(tables, Path("clinic"))                 # clinic/<table>.csv

Valid *input* per the interchange contract (section 1), deterministic for a seed, and
vectorised over all patients (100,000 patients, ~24M lab rows, in well under a minute).
The rates and timings used are in `dmtwatch.synth.rates`, each with its source.
"""

from dmtwatch.synth.csv_writer import write_csv
from dmtwatch.synth.generator import generate

__all__ = ["generate", "write_csv"]
