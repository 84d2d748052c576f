"""The synthetic clinic: valid contract input, deterministic, and as realistic as promised.

Rates are checked on 5,000 patients within loose bounds around the published figures the
generator is drawn from (dmtwatch.synth.rates names the sources).
"""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dmtwatch.model.tables import TABLES
from dmtwatch.synth import generate, write_csv

UNTIL = date(2016, 1, 15)
COUNTS = ("lymphocytes", "leukocytes", "neutrophils", "platelets")


def frames(tables: dict[str, pa.Table]) -> dict[str, pd.DataFrame]:
    """Plain pandas frames: dictionary columns as text, dates as Timestamps."""
    out = {}
    for name, table in tables.items():
        df = table.to_pandas()
        for field in table.schema:
            if pa.types.is_dictionary(field.type):
                df[field.name] = df[field.name].astype(object)
            if pa.types.is_date32(field.type):
                df[field.name] = pd.to_datetime(df[field.name])
        out[name] = df
    return out


def count_value(labs: pd.DataFrame) -> pd.Series:
    """Numeric lab values with cell counts in 10^9/L and creatinine in umol/L."""
    value = pd.to_numeric(labs["value"], errors="coerce")
    value = value.where(labs["unit"] != "cells/uL", value / 1000)
    return value.where(labs["unit"] != "mg/dL", value * 88.42)


@pytest.fixture(scope="module")
def small() -> dict[str, pa.Table]:
    return generate(300, 7)


@pytest.fixture(scope="module")
def big() -> dict[str, pd.DataFrame]:
    return frames(generate(5000, 11))


@pytest.fixture(scope="module")
def first_course(big) -> pd.DataFrame:
    t = big["treatments"]
    return t[(t.drug == "alemtuzumab") & (t.course == 1)].set_index("patient_id")


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    write_csv(generate(200, 3), tmp_path / "a")
    write_csv(generate(200, 3), tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(f"{t}.csv" for t in TABLES)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seeds_differ() -> None:
    a, b = generate(200, 3), generate(200, 4)
    for name in ("patients", "treatments", "labs", "relapses", "mri", "edss"):
        assert not a[name].equals(b[name]), name


def test_columns_are_the_contract_columns(small, tmp_path: Path) -> None:
    assert set(small) == set(TABLES)
    write_csv(small, tmp_path)
    for name, spec in TABLES.items():
        assert tuple(small[name].column_names) == spec.column_names
        with open(tmp_path / f"{name}.csv", newline="") as f:
            assert tuple(next(csv.reader(f))) == spec.column_names


def test_csv_is_plain_iso_and_empty_for_missing(small, tmp_path: Path) -> None:
    write_csv(small, tmp_path)
    text = (tmp_path / "treatments.csv").read_text()
    assert '"' not in text  # nothing needs quoting, so nothing is quoted
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == small["treatments"].num_rows
    assert any(r["end_date"] == "" and r["drug"] == "natalizumab" for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["start_date"]) for r in rows)
    # every labs cell reads back as the table has it (null = empty cell)
    with open(tmp_path / "labs.csv", newline="") as f:
        back = list(csv.reader(f))[1:]
    labs = small["labs"]
    assert len(back) == labs.num_rows
    for j, column in enumerate(labs.columns):
        col = column.combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        expected = pc.fill_null(pc.cast(col, pa.string()), "").to_pylist()
        assert [row[j] for row in back] == expected, labs.column_names[j]


def test_csv_quotes_cells_that_need_it(tmp_path: Path) -> None:
    table = pa.table({"patient_id": ["P1", "P2", None], "term": ['a, "b"', "plain", "x\ny"]})
    write_csv({"adverse_events": table}, tmp_path)
    with open(tmp_path / "adverse_events.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["patient_id", "term"], ["P1", 'a, "b"'], ["P2", "plain"], ["", "x\ny"]]


@pytest.mark.parametrize("until", [date(2012, 3, 1), UNTIL])
def test_nothing_is_dated_after_until(until: date) -> None:
    tables = generate(400, 5, until)
    for name, table in tables.items():
        for field in table.schema:
            if pa.types.is_date32(field.type):
                latest = pc.max(table[field.name]).as_py()
                assert latest is None or latest <= until, (name, field.name, latest)
    births = tables["patients"]["birth_date"].to_pylist()
    assert all(b is None or b <= until.isoformat()[: len(b)] for b in births)
    t = frames(tables)["treatments"]
    running = t[t.end_date.isna()]
    assert running.stop_reason.isna().all()


def test_every_patient_id_is_a_patient(small) -> None:
    ids = small["patients"]["patient_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 300
    assert all(re.fullmatch(r"P\d{6}", i) for i in ids)
    for name, table in small.items():
        used = set(pc.unique(table["patient_id"].combine_chunks().cast(pa.string())).to_pylist())
        assert used <= set(ids), name


def test_alemtuzumab_courses(big, first_course) -> None:
    t = big["treatments"]
    alem = t[t.drug == "alemtuzumab"]
    assert (alem.dose == 12).all() and (alem.dose_unit == "mg").all()
    days = (alem.end_date - alem.start_date).dt.days + 1
    assert (days[alem.course == 1] == 5).all() and (days[alem.course > 1] == 3).all()
    second = alem[alem.course == 2].set_index("patient_id")
    gap = (second.start_date - first_course.start_date.reindex(second.index)).dt.days
    assert len(second) > 1000 and gap.between(330, 420).all()
    third = alem[alem.course == 3].set_index("patient_id")
    assert len(third) > 0
    assert ((third.start_date - second.end_date.reindex(third.index)).dt.days >= 365).all()
    # premedication on the first 3 days of every course
    steroid = t[t.drug == "methylprednisolone"]
    premed = alem.merge(steroid, on=["patient_id", "start_date"], how="left")
    assert premed.drug_y.notna().all()


def test_most_came_from_natalizumab_and_a_few_stay_on_it(big, first_course) -> None:
    t = big["treatments"]
    before = t[t.patient_id.isin(first_course.index) & (t.drug != "alemtuzumab")]
    before = before.merge(first_course[["start_date"]], left_on="patient_id", right_index=True)
    last = before[before.end_date < before.start_date_y].sort_values("end_date")
    last = last.groupby("patient_id").last()
    assert 0.7 < (last.drug == "natalizumab").mean() < 0.9
    reasons = last[last.drug == "natalizumab"].stop_reason.value_counts(normalize=True)
    assert reasons.index[0] == "inefficacy"
    assert {"allergy", "pml_risk"} <= set(reasons.index)
    ongoing = t[(t.drug == "natalizumab") & t.end_date.isna()]
    only = set(ongoing.patient_id) - set(first_course.index)
    assert only == set(ongoing.patient_id)
    assert 0.03 < len(only) / 5000 < 0.08
    labs = big["labs"]
    jcv = labs[(labs.test == "jcv_index") & labs.patient_id.isin(only)]
    per_patient = jcv.groupby("patient_id").date.agg(["min", "max", "count"])
    years = (pd.Timestamp(UNTIL) - per_patient["min"]).dt.days / 365.25
    assert ((per_patient["count"] / years).median() > 1.5) and (
        per_patient["count"] / years
    ).median() < 2.5


def test_everyone_is_lymphopenic_one_month_after_course_1(big, first_course) -> None:
    labs = big["labs"]
    lymph = labs[labs.test == "lymphocytes"].assign(v=lambda d: count_value(d))
    lymph = lymph.merge(first_course[["end_date"]], left_on="patient_id", right_index=True)
    after = (lymph.date - lymph.end_date).dt.days
    month1 = lymph[after.between(20, 45)].groupby("patient_id").v.min()
    due = first_course[(pd.Timestamp(UNTIL) - first_course.end_date).dt.days >= 34].index
    assert len(due) > 4000
    assert month1.reindex(due).lt(1.0).all()
    # and recovery: a year after course 1 most are back near the lower limit
    year1 = lymph[after.between(330, 400)].groupby("patient_id").v.median()
    assert 0.6 < year1.median() < 1.4


def test_ring_enhancing_case_with_rescue_therapy(small) -> None:
    f = frames(small)
    mri, t, ae = f["mri"], f["treatments"], f["adverse_events"]
    ring = mri[mri.ring_enhancing > 0]
    assert len(ring) >= 1
    for row in ring.itertuples():
        mine = t[t.patient_id == row.patient_id]
        first = mine[(mine.drug == "alemtuzumab") & (mine.course == 1)].start_date.iloc[0]
        assert 90 <= (row.date - first).days <= 200
        assert row.gd_enhancing >= row.ring_enhancing >= 3
        plex = mine[mine.drug == "plasma_exchange"].start_date
        rituximab = mine[mine.drug == "rituximab"].start_date
        assert len(plex) == 1 and row.date < plex.iloc[0]
        assert len(rituximab) == 0 or plex.iloc[0] < rituximab.iloc[0]
        event = ae[(ae.patient_id == row.patient_id) & (ae.category == "cns_inflammation")]
        assert len(event) == 1 and event.serious.all()


def test_rates_are_near_the_published_ones(big, first_course) -> None:
    pts, ae, rel = big["patients"], big["adverse_events"], big["relapses"]
    n_alem = len(first_course)
    assert 0.65 < (pts.sex == "F").mean() < 0.75
    follow_up = (pd.Timestamp(UNTIL) - first_course.start_date).dt.days

    # thyroid autoimmunity ~40% within the monitoring years (S1, S48-S50)
    thyroid = set(ae[ae.category == "thyroid"].patient_id)
    long = follow_up[follow_up >= 3 * 365].index
    assert 0.25 < np.mean([p in thyroid for p in long]) < 0.50
    kinds = ae[ae.category == "thyroid"].term.value_counts()
    assert kinds["Basedow's disease"] > kinds["Hypothyroidism"]

    # ITP ~2% (S12), most of it seen within follow-up
    itp = ae[ae.term == "Immune thrombocytopenia"]
    assert 0.005 < itp.patient_id.nunique() / n_alem < 0.04
    assert itp.serious.all() and (itp.category == "autoimmune").all()

    # infections ~70% (S1), serious ~3% (S1, S51)
    infection = ae[ae.category == "infection"]
    two_years = follow_up[follow_up >= 2 * 365].index
    anyone = set(infection.patient_id)
    serious = set(infection[infection.serious].patient_id)
    assert 0.55 < np.mean([p in anyone for p in two_years]) < 0.9
    assert 0.01 < np.mean([p in serious for p in two_years]) < 0.08
    assert (ae.category == "infusion_reaction").any()

    # relapses: very active before (report B), ~0.2 a year after (S52-S55)
    rel = rel.merge(first_course[["start_date"]], left_on="patient_id", right_index=True)
    days = (rel.onset_date - rel.start_date).dt.days
    assert 1.5 < days.between(-365, -1).sum() / n_alem < 2.6
    one_year = follow_up[follow_up >= 365].index
    after = days.between(0, 364) & rel.patient_id.isin(one_year)
    assert 0.1 < after.sum() / len(one_year) < 0.35
    assert rel.severity.isin(["mild", "moderate", "severe"]).all()

    # exacerbated CNS inflammation (report A) is rare: ~1%
    cns = ae[ae.category == "cns_inflammation"].patient_id.nunique() / n_alem
    assert 0.003 < cns < 0.02

    # severe neutropenia is rare (< 1%)
    assert ae[ae.term == "Neutropenia"].patient_id.nunique() / n_alem < 0.01


def test_mri_before_and_after(big, first_course) -> None:
    mri = big["mri"].merge(first_course[["start_date"]], left_on="patient_id", right_index=True)
    days = (mri.date - mri.start_date).dt.days
    brain = mri.region == "brain"
    before = mri[brain & days.between(-180, -1)].sort_values("date").groupby("patient_id").last()
    assert len(before) == len(first_course)
    assert 0.55 < (before.new_t2 > 0).mean() < 0.85
    assert 0.35 < (before.gd_enhancing > 0).mean() < 0.65
    year1 = mri[brain & days.between(270, 455)]
    assert (year1.gd_enhancing > 0).mean() < 0.2
    assert (mri.ring_enhancing.fillna(0) == 0).mean() > 0.99
    assert 0.8 < mri.contrast.mean() < 1.0
    assert mri.gd_enhancing[~mri.contrast].isna().all()


def test_some_relapses_after_alemtuzumab_have_no_mri(big, first_course) -> None:
    rel = big["relapses"].merge(
        first_course[["start_date"]], left_on="patient_id", right_index=True
    )
    after = rel[rel.onset_date >= rel.start_date]
    mri = big["mri"]
    scans = after.merge(mri[mri.contrast][["patient_id", "date"]], on="patient_id")
    lag = (scans.date - scans.onset_date).dt.days
    scanned = scans[lag.between(0, 14)].groupby(["patient_id", "onset_date"]).size()
    share = 1 - len(scanned) / len(after)
    assert 0.1 < share < 0.3


def test_lab_units_ranges_and_gaps(big) -> None:
    labs = big["labs"]
    counts = labs[labs.test.isin(COUNTS)]
    cells = (counts.unit == "cells/uL").mean()
    assert 0.05 < cells < 0.15
    creatinine = labs[labs.test == "creatinine"]
    assert 0.05 < (creatinine.unit == "mg/dL").mean() < 0.15
    # a value in cells/uL is ~1000x one in 10^9/L, and its range is in the same unit
    lymph = counts[counts.test == "lymphocytes"]
    in_cells = lymph[(lymph.unit == "cells/uL") & lymph.ref_low.notna()]
    assert (in_cells.ref_low >= 1000).all()
    assert pd.to_numeric(lymph[lymph.unit == "cells/uL"].value).median() > 100
    numeric = labs[labs.test != "urine_blood"]
    assert 0.4 < numeric.ref_high.notna().mean() < 0.6
    blood = labs[labs.test == "urine_blood"]
    assert blood.value.isin(["negative", "trace", "1+", "2+", "3+"]).all()
    assert blood.unit.isna().all()
    assert set(labs.test) >= {"tsh", "free_t4", "tpo_ab", "alt", "ast", "bilirubin", "urine_rbc"}
    # monitoring gaps: some patients miss months in a row while monitored
    cbc = labs[labs.test == "platelets"].sort_values(["patient_id", "date"])
    step = cbc.groupby("patient_id").date.diff().dt.days
    assert (step > 90).groupby(cbc.patient_id).any().mean() > 0.02


def test_monthly_urinalysis_and_liver_tests_under_the_new_protocol(big, first_course) -> None:
    """Issue 10: microscopy and liver tests with every monthly blood count, the strip
    answers agree with the microscopy of the same sample, and one UPCR before course 1."""
    labs = big["labs"]
    visits = labs.groupby("test")[["patient_id", "date"]].apply(
        lambda d: set(zip(d.patient_id, d.date, strict=True))
    )
    cbc = visits["platelets"]
    for test in ("urine_rbc", "alt", "ast", "bilirubin"):
        assert len(visits[test] & cbc) / len(cbc) > 0.9, test
    # a strip nearly always comes with microscopy of the same sample
    strip = labs[labs.test == "urine_blood"]
    assert (
        0.9
        < np.mean(
            [k in visits["urine_rbc"] for k in zip(strip.patient_id, strip.date, strict=True)]
        )
        < 1.0
    )
    positive = strip.value != "negative"
    assert 0.08 < positive.mean() < 0.16
    rbc = labs[labs.test == "urine_rbc"][["patient_id", "date", "value"]]
    pair = strip.merge(rbc, on=["patient_id", "date"], suffixes=("", "_rbc"))
    haematuria = pd.to_numeric(pair.value_rbc) >= 3
    assert (pair.value[haematuria] != "negative").mean() > 0.8
    assert (pair.value[~haematuria] != "negative").mean() < 0.1
    # UPCR: one baseline within 30 days before course 1, mg/mmol, mostly normal
    upcr = labs[labs.test == "upcr"].set_index("patient_id")
    assert upcr.index.is_unique and (upcr.unit == "mg/mmol").all()
    lead = (first_course.start_date.reindex(upcr.index) - upcr.date).dt.days
    assert lead.between(1, 30).all()
    assert len(upcr) / len(first_course) > 0.9
    value = pd.to_numeric(upcr.value)
    assert 5 < value.median() < 10 and 0.005 < (value > 15).mean() < 0.08


def test_thyroid_labs_match_the_events(big) -> None:
    labs, ae = big["labs"], big["adverse_events"]
    tsh = labs[labs.test == "tsh"].assign(v=lambda d: pd.to_numeric(d.value))
    graves = ae[ae.term == "Basedow's disease"][["patient_id", "onset_date"]]
    at_onset = graves.merge(
        tsh, left_on=["patient_id", "onset_date"], right_on=["patient_id", "date"]
    )
    assert len(at_onset) == len(graves) and (at_onset.v < 0.1).all()
    hypo = ae[ae.term == "Hypothyroidism"][["patient_id", "onset_date"]]
    at_onset = hypo.merge(
        tsh, left_on=["patient_id", "onset_date"], right_on=["patient_id", "date"]
    )
    assert len(at_onset) == len(hypo) and (at_onset.v > 4).all()
    tpo = labs[labs.test == "tpo_ab"]
    assert (pd.to_numeric(tpo.value) > 34).any()


def test_itp_shows_in_platelets(big) -> None:
    labs, ae = big["labs"], big["adverse_events"]
    plt = labs[labs.test == "platelets"].assign(v=lambda d: count_value(d))
    itp = ae[ae.term == "Immune thrombocytopenia"][["patient_id", "onset_date"]]
    at_onset = itp.merge(plt, left_on=["patient_id", "onset_date"], right_on=["patient_id", "date"])
    assert len(at_onset) == len(itp) and (at_onset.v < 100).all()
    assert (at_onset.v < 30).any()
    others = plt[~plt.patient_id.isin(itp.patient_id)]
    assert (others.v >= 100).all()


def test_edss_in_half_steps(big) -> None:
    score = big["edss"].score
    assert ((score * 2) % 1 == 0).all() and score.between(0, 10).all()
    per_patient = big["edss"].groupby("patient_id").size()
    assert per_patient.median() >= 3


def test_until_accepts_a_datetime_or_a_future_date() -> None:
    from datetime import datetime

    a = generate(20, 1, datetime(2014, 5, 1, 12, 0))
    b = generate(20, 1, date(2014, 5, 1))
    assert all(a[k].equals(b[k]) for k in a)
    assert generate(5, 1, date.today() + timedelta(days=1))["patients"].num_rows == 5
