"""Readers of spontaneous reports: FAERS quarterly ASCII (both layouts) and the reports CSV.

The real FAERS samples of ../shared/data are read in place and their counts are made by
hand here, with plain Python over the same files, so the reader is checked against the
files and not against itself. De-duplication, deleted cases, zips and malformed lines
are checked on small quarters written into tmp_path.
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from dmtwatch.pv.drug_names import DrugMapError, clean_drug_name, clean_drug_names, read_drug_map
from dmtwatch.pv.faers import AGE_GROUPS, COLUMNS, FaersError, read_faers
from dmtwatch.pv.reports import ReportsError, read_reports_csv

DATA = Path(__file__).parents[2] / "shared" / "data"
SAMPLES = DATA / "faers-sample"
CURRENT = SAMPLES / "2017q2"
LEGACY = SAMPLES / "2004q1"

needs_samples = pytest.mark.skipif(
    not (CURRENT / "DEMO17Q2.txt").exists() or not (LEGACY / "DEMO04Q1.TXT").exists(),
    reason=f"the FAERS samples are not at {SAMPLES} (../shared/data beside the repository)",
)


# ---------------------------------------------------------------- helpers


def _read_faers(*args, **kwargs) -> tuple[pa.Table, list, dict[str, int]]:
    """read_faers with its reports as the long (report, drug, event) table."""
    sets, problems, summary = read_faers(*args, **kwargs)
    return sets.to_table(), problems, summary


def _rows(path: Path) -> list[dict[str, str]]:
    """A '$' file as dicts, by hand: one per data line with as many fields as the header."""
    lines = path.read_text(encoding="latin-1").splitlines()
    header = [h.strip().lower() for h in lines[0].split("$")]
    split = (line.split("$") for line in lines[1:] if line)
    return [
        dict(zip(header, fields, strict=True)) for fields in split if len(fields) == len(header)
    ]


def _by_hand(folder: Path, tag: str, roles: tuple[str, ...] | None = ("PS", "SS")) -> dict:
    """Counts of a one-quarter sample made without the reader."""
    demo, drug, reac = (_rows(folder / f"{t}{tag}") for t in ("DEMO", "DRUG", "REAC"))
    key, case = ("primaryid", "caseid") if "primaryid" in demo[0] else ("isr", "case")
    case_of = {d[key]: d[case] for d in demo}
    wanted = [d for d in drug if roles is None or d["role_cod"] in roles]
    events: dict[str, set[str]] = {}
    for r in reac:
        events.setdefault(r[key], set()).add(r["pt"].strip().upper())

    def name(d: dict[str, str]) -> str:
        return (d.get("prod_ai") or "").strip().upper() or clean_drug_name(d["drugname"])

    triples = {(case_of[d[key]], name(d), e) for d in wanted for e in events.get(d[key], ())}
    return {
        "reports_read": len(demo),
        "reports": len(set(case_of.values())),
        "drug_rows_read": len(drug),
        "drug_rows_kept": len(wanted),
        "reaction_rows_kept": len(reac),
        "triples": triples,
    }


def _triples(table: pa.Table) -> set[tuple[str, str, str]]:
    return set(
        zip(
            table["report_id"].to_pylist(),
            table["drug"].to_pylist(),
            table["event"].to_pylist(),
            strict=True,
        )
    )


def _sorted(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["report_id"], r["drug"], r["event"]))


CURRENT_HEADERS = {
    "DEMO": "primaryid$caseid$caseversion$i_f_code$fda_dt$age$age_cod$age_grp$sex",
    "DRUG": "primaryid$caseid$drug_seq$role_cod$drugname$prod_ai",
    "REAC": "primaryid$caseid$pt$drug_rec_act",
}


def _quarter(folder: Path, tag: str, demo: list[str], drug: list[str], reac: list[str]) -> Path:
    """A current-layout quarter from '$' lines without the header."""
    folder.mkdir(parents=True, exist_ok=True)
    for table, lines in (("DEMO", demo), ("DRUG", drug), ("REAC", reac)):
        text = "\n".join([CURRENT_HEADERS[table], *lines]) + "\n"
        (folder / f"{table}{tag}.txt").write_text(text)
    return folder


def _demo(case: int, version: int, fda_dt: str, age: str = "40", cod: str = "YR") -> str:
    return f"{case}{version}${case}${version}$F${fda_dt}${age}${cod}$$F"


def _drug(case: int, version: int, name: str, role: str = "PS", ai: str = "") -> str:
    return f"{case}{version}${case}$1${role}${name}${ai}"


def _reac(case: int, version: int, pt: str) -> str:
    return f"{case}{version}${case}${pt}$"


# ---------------------------------------------------------------- the real samples


@needs_samples
@pytest.mark.parametrize(("folder", "tag"), [(CURRENT, "17Q2.txt"), (LEGACY, "04Q1.TXT")])
def test_samples_give_the_counts_made_by_hand(folder: Path, tag: str) -> None:
    table, problems, summary = _read_faers([folder])
    hand = _by_hand(folder, tag)
    assert problems == []
    assert table.column_names == list(COLUMNS)
    for column in ("report_id", "drug", "event"):
        assert table.schema.field(column).type == pa.string()
    for key in ("reports_read", "reports", "drug_rows_read", "drug_rows_kept"):
        assert summary[key] == hand[key], key
    assert summary["reaction_rows_kept"] == hand["reaction_rows_kept"]
    assert summary["versions_dropped"] == 0
    assert summary["rows"] == table.num_rows == len(hand["triples"])
    assert _triples(table) == hand["triples"]


@needs_samples
def test_sample_numbers() -> None:
    """The figures quoted in the docs, so a change to the reader shows up here."""
    _, _, current = _read_faers([CURRENT])
    _, _, legacy = _read_faers([LEGACY])
    assert (current["reports"], current["drug_rows_kept"], current["rows"]) == (100, 190, 452)
    assert (legacy["reports"], legacy["drug_rows_kept"], legacy["rows"]) == (100, 153, 696)


@needs_samples
def test_sample_names_prefer_prod_ai_and_strata_come_from_demo() -> None:
    table, _, _ = _read_faers([CURRENT])
    drugs = set(table["drug"].to_pylist())
    assert {"FINGOLIMOD HYDROCHLORIDE", "NATALIZUMAB", "PEGINTERFERON BETA-1A"} <= drugs
    assert "GILENYA" not in drugs and "TYSABRI" not in drugs
    assert set(table["quarter"].to_pylist()) == {"2017Q2"}
    assert set(table["year"].to_pylist()) == {"2017"}
    assert set(table["sex"].to_pylist()) <= {"F", "M", "UNK"}
    assert set(table["age_group"].to_pylist()) <= set(AGE_GROUPS)
    demo = {d["caseid"]: d for d in _rows(CURRENT / "DEMO17Q2.txt")}
    for row in table.to_pylist():
        given = demo[row["report_id"]]["sex"]
        assert row["sex"] == (given if given in ("F", "M") else "UNK")


@needs_samples
def test_legacy_strata() -> None:
    table, _, _ = _read_faers([LEGACY])
    demo = {d["case"]: d for d in _rows(LEGACY / "DEMO04Q1.TXT")}
    for row in table.to_pylist():
        given = demo[row["report_id"]]
        assert row["sex"] == (given["gndr_cod"] if given["gndr_cod"] in ("F", "M") else "UNK")
        assert row["quarter"] == f"{given['fda_dt'][:4]}Q{(int(given['fda_dt'][4:6]) + 2) // 3}"


@needs_samples
def test_role_filter() -> None:
    every, _, every_summary = _read_faers([CURRENT], roles=None)
    hand = _by_hand(CURRENT, "17Q2.txt", roles=None)
    roles = Counter(d["role_cod"] for d in _rows(CURRENT / "DRUG17Q2.txt"))
    assert roles["C"] > 0 and roles["I"] > 0
    assert every_summary["drug_rows_kept"] == sum(roles.values())
    assert _triples(every) == hand["triples"]
    concomitant = {
        (d["prod_ai"] or clean_drug_name(d["drugname"])).upper()
        for d in _rows(CURRENT / "DRUG17Q2.txt")
        if d["role_cod"] in ("C", "I")
    }
    suspects, _, _ = _read_faers([CURRENT])
    assert concomitant & set(every["drug"].to_pylist()) - set(suspects["drug"].to_pylist())
    _, _, primary = _read_faers([CURRENT], roles=("ps",))
    assert primary["drug_rows_kept"] == roles["PS"]


@needs_samples
def test_a_folder_of_quarters_reads_them_all() -> None:
    both, _, summary = _read_faers([SAMPLES])
    current, _, _ = _read_faers([CURRENT])
    legacy, _, _ = _read_faers([LEGACY])
    assert summary["quarters"] == 2
    assert _triples(both) == _triples(current) | _triples(legacy)
    assert set(both["quarter"].to_pylist()) == {"2004Q1", "2017Q2"}


@needs_samples
@pytest.mark.parametrize(("folder", "prefix"), [(CURRENT, "ascii/"), (LEGACY, "ASCII/")])
def test_zip_reads_as_the_folder(tmp_path: Path, folder: Path, prefix: str) -> None:
    archive = tmp_path / f"faers_ascii_{folder.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, prefix + f.name)
        z.writestr("Readme.pdf", b"%PDF")
    from_zip, zip_problems, zip_summary = _read_faers([archive])
    from_folder, _, folder_summary = _read_faers([folder])
    assert zip_problems == []
    assert zip_summary == folder_summary
    assert _sorted(from_zip) == _sorted(from_folder)


@needs_samples
def test_malformed_lines_are_reported_and_the_rest_read(tmp_path: Path) -> None:
    folder = tmp_path / "2017q2"
    shutil.copytree(CURRENT, folder)
    drug_file = folder / "DRUG17Q2.txt"
    lines = drug_file.read_text().splitlines()
    # line 11 of the file gets a '$' inside its drugname; lines 21 and 22 run together
    fields = lines[10].split("$")
    fields[4] = fields[4][:3] + "$" + fields[4][3:]
    lines[10] = "$".join(fields)
    lines[20:22] = [lines[20] + lines[21]]
    drug_file.write_text("\n".join(lines) + "\n")
    reac_file = folder / "REAC17Q2.txt"
    reac = reac_file.read_text().splitlines()
    pid, case, pt, act = reac[5].split("$")
    reac[5:6] = [f"{pid}${case}${pt[:4]}", f"{pt[4:]}${act}"]  # a row broken over two lines
    reac_file.write_text("\n".join(reac) + "\n")

    table, problems, summary = _read_faers([folder])
    where = {(p.file, p.row): p.reason for p in problems}
    assert set(where) == {
        (str(drug_file), 11),
        (str(drug_file), 21),
        (str(reac_file), 6),
        (str(reac_file), 7),
    }
    assert "'$' inside a value" in where[(str(drug_file), 11)]
    assert "rows run together" in where[(str(drug_file), 21)]
    assert "broken over lines" in where[(str(reac_file), 6)]
    assert summary["malformed_lines"] == 4
    assert summary["drug_rows_read"] == 328 - 3
    assert summary["reaction_rows_kept"] == 286 - 1
    hand = _by_hand(folder, "17Q2.txt")  # by hand, over the lines with the header's fields
    assert summary["reports"] == hand["reports"]
    assert _triples(table) == hand["triples"]


def test_bad_key_is_reported_with_its_line(tmp_path: Path) -> None:
    folder = _quarter(
        tmp_path / "q",
        "17Q1",
        [_demo(100, 1, "20170110"), "ABC$100$1$F$20170110$$$$F", _demo(200, 1, "20170111")],
        [_drug(100, 1, "ASPIRIN"), _drug(200, 1, "IBUPROFEN")],
        [_reac(100, 1, "Headache"), _reac(200, 1, " nausea ")],
    )
    table, problems, summary = _read_faers([folder])
    assert [(p.row, p.column, p.value) for p in problems] == [(3, "primaryid", "ABC")]
    assert summary["reports_read"] == 2
    assert sorted(_triples(table)) == [
        ("100", "ASPIRIN", "HEADACHE"),
        ("200", "IBUPROFEN", "NAUSEA"),
    ]


# ---------------------------------------------------------------- de-duplication


def test_latest_version_across_quarters_and_deleted_cases(tmp_path: Path) -> None:
    q1 = _quarter(
        tmp_path / "faers_2017q1" / "ascii",
        "17Q1",
        [
            _demo(100, 1, "20170110"),
            _demo(200, 1, "20170301"),
            _demo(300, 1, "20170302"),
            _demo(500, 3, "20170320"),
        ],
        [
            _drug(100, 1, "OLDDRUG"),
            _drug(200, 1, "FIRSTDRUG"),
            _drug(300, 1, "GONEDRUG"),
            _drug(500, 3, "NEWESTDRUG"),
        ],
        [_reac(100, 1, "HEADACHE"), _reac(200, 1, "RASH"), _reac(300, 1, "RASH")],
    )
    (q1 / "REAC17Q1.txt").write_text((q1 / "REAC17Q1.txt").read_text() + _reac(500, 3, "FEVER"))
    q2 = _quarter(
        tmp_path / "faers_2019q1" / "ASCII",
        "19Q1",
        [
            _demo(100, 2, "20170415"),  # a later version: wins
            _demo(200, 2, "20170301"),  # same date, higher primaryid: wins
            _demo(400, 1, "20170420"),
            _demo(500, 2, "20170101"),  # an older version sent again later: loses
        ],
        [
            _drug(100, 2, "NEWDRUG"),
            _drug(200, 2, "SECONDDRUG"),
            _drug(400, 1, "OTHERDRUG"),
            _drug(500, 2, "OLDERDRUG"),
        ],
        [_reac(100, 2, "NAUSEA"), _reac(200, 2, "RASH"), _reac(400, 1, "RASH")],
    )
    (q2 / "REAC19Q1.txt").write_text((q2 / "REAC19Q1.txt").read_text() + _reac(500, 2, "COUGH"))
    deleted = q2.parent / "Deleted"
    deleted.mkdir()
    (deleted / "DELETE19Q1.txt").write_text("300\r\n999\r\n")

    for order in ([q1.parent, q2.parent], [q2.parent, q1.parent]):
        table, problems, summary = _read_faers(order)
        assert problems == []
        assert sorted(_triples(table)) == [
            ("100", "NEWDRUG", "NAUSEA"),
            ("200", "SECONDDRUG", "RASH"),
            ("400", "OTHERDRUG", "RASH"),
            ("500", "NEWESTDRUG", "FEVER"),
        ]
        assert summary["reports_read"] == 8
        assert summary["versions_dropped"] == 3
        assert summary["deleted_case_ids"] == 2
        assert summary["deleted_cases_dropped"] == 1
        assert summary["reports"] == 4
        by_case = {r["report_id"]: r for r in table.to_pylist()}
        assert by_case["100"]["quarter"] == "2017Q2"
        assert by_case["500"]["quarter"] == "2017Q1"


def test_legacy_layout_as_the_fda_ships_it(tmp_path: Path) -> None:
    """Header without the trailing '$' its data lines have, CRLF, upper-case names."""
    folder = tmp_path / "aers_ascii_2004q1" / "ascii"
    folder.mkdir(parents=True)
    files = {
        "DEMO04Q1.TXT": [
            "ISR$CASE$I_F_COD$FDA_DT$AGE$AGE_COD$GNDR_COD",
            "4000001$3000001$I$20040105$70$YR$M$",
            "4000009$3000001$F$20040105$71$YR$M$",  # same case and date, higher isr
            "4000002$3000002$I$20040210$$$F$",
        ],
        "DRUG04Q1.TXT": [
            "ISR$DRUG_SEQ$ROLE_COD$DRUGNAME",
            "4000001$1$PS$AVONEX 30 MCG$",
            "4000009$1$PS$TYSABRI (NATALIZUMAB) 300MG/15ML$",
            "4000009$2$C$ASPIRIN.$",
            "4000002$1$SS$LEMTRADA$",
        ],
        "REAC04Q1.TXT": [
            "ISR$PT",
            "4000001$Headache$",
            "4000009$Progressive multifocal leukoencephalopathy$",
            "4000002$Thyroiditis$",
        ],
    }
    for name, lines in files.items():
        (folder / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    mapping = tmp_path / "map.csv"
    mapping.write_text("name,ingredient\nLemtrada,alemtuzumab\nTysabri,Natalizumab\n")
    table, problems, summary = _read_faers([folder.parent], drug_map=mapping)
    assert problems == []
    assert summary["versions_dropped"] == 1
    assert sorted(table.to_pylist(), key=lambda r: r["report_id"]) == [
        {
            "report_id": "3000001",
            "drug": "NATALIZUMAB",
            "event": "PROGRESSIVE MULTIFOCAL LEUKOENCEPHALOPATHY",
            "sex": "M",
            "age_group": "65-74",
            "year": "2004",
            "quarter": "2004Q1",
        },
        {
            "report_id": "3000002",
            "drug": "ALEMTUZUMAB",
            "event": "THYROIDITIS",
            "sex": "F",
            "age_group": "unknown",
            "year": "2004",
            "quarter": "2004Q1",
        },
    ]


def test_age_groups_and_sex(tmp_path: Path) -> None:
    ages = [
        ("17.9", "YR", "", "<18"),
        ("18", "YR", "", "18-44"),
        ("44.99", "YR", "", "18-44"),
        ("45", "YR", "", "45-64"),
        ("6", "DEC", "", "45-64"),
        ("800", "MON", "", "65-74"),
        ("75", "YR", "", ">=75"),
        ("5", "DY", "", "<18"),
        ("", "", "C", "<18"),
        ("", "", "E", "unknown"),
        ("abc", "YR", "", "unknown"),
        ("130", "YR", "", "unknown"),
        ("40", "", "", "unknown"),
    ]
    sexes = ["F", "m ", "NS", "", "UNK", "M", "F", "F", "F", "F", "F", "F", "F"]
    demo = [
        f"{100 + i}1${100 + i}$1$I$20170401${age}${cod}${grp}${sex}"
        for i, ((age, cod, grp, _), sex) in enumerate(zip(ages, sexes, strict=True))
    ]
    drug = [_drug(100 + i, 1, "X") for i in range(len(ages))]
    reac = [_reac(100 + i, 1, "Y") for i in range(len(ages))]
    table, _, _ = _read_faers([_quarter(tmp_path / "q", "17Q2", demo, drug, reac)])
    got = {int(r["report_id"]) - 100: (r["age_group"], r["sex"]) for r in table.to_pylist()}
    expected_sex = ["F", "M", "UNK", "UNK", "UNK", "M"] + ["F"] * 7
    assert got == {i: (ages[i][3], expected_sex[i]) for i in range(len(ages))}


def test_dates_that_are_not_dates(tmp_path: Path) -> None:
    """An invalid fda_dt counts as the oldest version and gives an unknown period."""
    folder = _quarter(
        tmp_path / "q",
        "17Q2",
        [_demo(100, 1, "20170401"), _demo(100, 2, ""), _demo(200, 1, "201713")],
        [_drug(100, 1, "FIRST"), _drug(100, 2, "SECOND"), _drug(200, 1, "OTHER")],
        [_reac(100, 1, "RASH"), _reac(100, 2, "RASH"), _reac(200, 1, "RASH")],
    )
    table, _, _ = _read_faers([folder])
    assert sorted(
        (r["report_id"], r["drug"], r["year"], r["quarter"]) for r in table.to_pylist()
    ) == [
        ("100", "FIRST", "2017", "2017Q2"),
        ("200", "OTHER", "unknown", "unknown"),
    ]


def test_latin1_bytes_do_not_lose_rows(tmp_path: Path) -> None:
    folder = _quarter(
        tmp_path / "q",
        "17Q2",
        [_demo(100, 1, "20170401")],
        [],
        [_reac(100, 1, "RASH")],
    )
    (folder / "DRUG17Q2.txt").write_bytes(
        (CURRENT_HEADERS["DRUG"] + "\n").encode() + b"1001$100$1$PS$ALT\xc9RE 5 MG$\n"
    )
    table, problems, _ = _read_faers([folder])
    assert problems == []
    assert table["drug"].to_pylist() == ["ALTÉRE"]


# ---------------------------------------------------------------- unreadable quarters


@needs_samples
def test_missing_reac_file_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "faers_ascii_2017q2"
    shutil.copytree(CURRENT, folder)
    (folder / "REAC17Q2.txt").unlink()
    with pytest.raises(FaersError, match="REAC") as error:
        _read_faers([folder])
    assert str(folder) in str(error.value)
    assert "2017Q2" in str(error.value)


@needs_samples
def test_corrupt_zip_names_the_zip(tmp_path: Path) -> None:
    archive = tmp_path / "faers_ascii_2017q2.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(CURRENT.iterdir()):
            z.write(f, "ascii/" + f.name)
    archive.write_bytes(archive.read_bytes()[:5000])  # cut short, as a failed download
    with pytest.raises(FaersError, match=r"faers_ascii_2017q2\.zip"):
        _read_faers([archive])


@needs_samples
def test_corrupt_member_names_zip_and_member(tmp_path: Path) -> None:
    archive = tmp_path / "faers_ascii_2017q2.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(CURRENT.iterdir()):
            z.write(f, "ascii/" + f.name)
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("ascii/DRUG17Q2.txt")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 2000  # inside the deflated data
    data[start : start + 64] = bytes(64)
    archive.write_bytes(bytes(data))
    with pytest.raises(FaersError, match=r"faers_ascii_2017q2\.zip\[ascii/DRUG17Q2\.txt\]"):
        _read_faers([archive])


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(FaersError, match="no such file"):
        _read_faers([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FaersError, match="no FAERS quarter found"):
        _read_faers([tmp_path / "empty"])
    folder = _quarter(tmp_path / "q", "17Q2", [_demo(1, 1, "20170401")], [], [])
    (folder / "DRUG17Q2.txt").write_text("primaryid$caseid$drug_seq$drugname\n")
    with pytest.raises(FaersError, match=r"DRUG17Q2\.txt: missing column\(s\) role_cod"):
        _read_faers([folder])
    with pytest.raises(ValueError, match="roles"):
        _read_faers([folder], roles=())


# ---------------------------------------------------------------- drug names


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("Tysabri 300mg/15ml", "TYSABRI"),
        ("LEMTRADA (ALEMTUZUMAB)", "LEMTRADA"),
        ("Lemtrada 12 mg", "LEMTRADA"),
        ("ACYCLOVIR                          /00587301/", "ACYCLOVIR"),
        ("BACLOFEN.", "BACLOFEN"),
        ("SOLU-MEDROL", "SOLU MEDROL"),
        ("METFORMIN HYDROCHLORIDE ER", "METFORMIN HYDROCHLORIDE"),
        ("PROCYCLIDINE HYDROCHLORIDE 2MG TAB", "PROCYCLIDINE HYDROCHLORIDE"),
        ("DORZOLAMIDE EYE DROPS", "DORZOLAMIDE"),
        ("ADVAIR DISKUS 100/50", "ADVAIR DISKUS"),
        ("ADDERALL 10", "ADDERALL"),
        ("LIDOCAINE 2%", "LIDOCAINE"),
        ("VITAMIN B12", "VITAMIN B12"),
        ("COENZYME Q10", "COENZYME Q10"),
        ("PEGINTERFERON BETA-1A", "PEGINTERFERON BETA 1A"),
        ("(OXALIPLATIN) - SOLUTION- 85 MG/M2", "OXALIPLATIN"),
        ("CALCIUM WITH VITAMIN D (ERGOCALCIFEROL, CALCIUM SOD", "CALCIUM WITH VITAMIN D"),
        ("ZERIT CONTINUING (STAVUDINE)", "ZERIT"),
        ("TABLET", "TABLET"),
    ],
)
def test_clean_drug_name(given: str, cleaned: str) -> None:
    assert clean_drug_name(given) == cleaned


@needs_samples
def test_cleaning_is_idempotent_on_the_sample_names() -> None:
    names = [
        d["drugname"] for d in _rows(CURRENT / "DRUG17Q2.txt") + _rows(LEGACY / "DRUG04Q1.TXT")
    ]
    once = clean_drug_names(pa.array(names))
    assert once.to_pylist() == clean_drug_names(once).to_pylist()
    assert all(n for n in once.to_pylist())


def test_mapping_file_lemtrada_to_alemtuzumab(tmp_path: Path) -> None:
    folder = _quarter(
        tmp_path / "q",
        "17Q2",
        [_demo(100, 1, "20170401"), _demo(200, 1, "20170401")],
        [
            _drug(100, 1, "Lemtrada 12 mg"),
            _drug(200, 1, "LEMTRADA", ai="ALEMTUZUMAB"),
            _drug(200, 1, "Campath", role="SS"),
        ],
        [_reac(100, 1, "Immune thrombocytopenia"), _reac(200, 1, "Basedow's disease")],
    )
    mapping = tmp_path / "ingredients.csv"
    mapping.write_text("name,ingredient\nLEMTRADA,ALEMTUZUMAB\n campath ,alemtuzumab\n")
    assert read_drug_map(mapping) == {"LEMTRADA": "ALEMTUZUMAB", "CAMPATH": "ALEMTUZUMAB"}
    without, _, _ = _read_faers([folder])
    assert set(without["drug"].to_pylist()) == {"LEMTRADA", "ALEMTUZUMAB", "CAMPATH"}
    table, _, _ = _read_faers([folder], drug_map=mapping)
    assert sorted(_triples(table)) == [
        ("100", "ALEMTUZUMAB", "IMMUNE THROMBOCYTOPENIA"),
        ("200", "ALEMTUZUMAB", "BASEDOW'S DISEASE"),
    ]


def test_bad_mapping_files(tmp_path: Path) -> None:
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("brand,ingredient\nLEMTRADA,ALEMTUZUMAB\n")
    with pytest.raises(DrugMapError, match=r"swapped\.csv: missing column\(s\) name"):
        read_drug_map(swapped)
    conflicting = tmp_path / "conflicting.csv"
    conflicting.write_text("name,ingredient\nLEMTRADA,ALEMTUZUMAB\nLemtrada 12mg,NATALIZUMAB\n")
    with pytest.raises(DrugMapError, match="line 3: LEMTRADA maps to NATALIZUMAB"):
        read_drug_map(conflicting)
    folder = _quarter(tmp_path / "q", "17Q2", [_demo(1, 1, "20170401")], [], [])
    with pytest.raises(FaersError, match=r"swapped\.csv"):
        _read_faers([folder], drug_map=swapped)


# ---------------------------------------------------------------- the reports CSV


def test_reports_csv_keeps_strata_and_reports_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_text(
        "Report_ID, drug ,event,sex,country\n"
        "r1,Lemtrada,Thyroiditis,F,FR\n"
        "r1,Lemtrada,Thyroiditis,F,FR\n"  # the same triple again: kept once
        "r2,,Rash,M,DE\n"  # empty drug: reported, dropped
        "\n"
        "r3,Tysabri,PML,M,DE,extra\n"  # too many fields: reported, dropped
        'r4, Tysabri ," PML ",M,DE\n'
        "r4,Tysabri,Headache,F,DE\n"  # another sex for r4: warning, first kept
    )
    table, problems = read_reports_csv(path)
    assert table.column_names == ["report_id", "drug", "event", "sex", "country"]
    assert table.to_pylist() == [
        {
            "report_id": "r1",
            "drug": "Lemtrada",
            "event": "Thyroiditis",
            "sex": "F",
            "country": "FR",
        },
        {"report_id": "r4", "drug": "Tysabri", "event": "PML", "sex": "M", "country": "DE"},
        {"report_id": "r4", "drug": "Tysabri", "event": "Headache", "sex": "M", "country": "DE"},
    ]
    assert [(p.row, p.column, p.level) for p in problems] == [
        (4, "drug", "error"),
        (6, None, "error"),
        (8, "sex", "warning"),
    ]
    assert "is empty" in problems[0].reason


def test_reports_csv_missing_columns_names_file_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "my_reports.csv"
    path.write_text("report_id,product,event\n1,A,B\n")
    with pytest.raises(ReportsError) as error:
        read_reports_csv(path)
    assert error.value.missing == ("drug",)
    assert str(path) in str(error.value) and "drug" in str(error.value)
    with pytest.raises(ReportsError, match=r"no such file|cannot be read"):
        read_reports_csv(tmp_path / "absent.csv")


def test_reports_csv_column_names_for_caers() -> None:
    caers = DATA / "caers" / "caers.csv"
    if not caers.exists():
        pytest.skip(f"{caers} is absent (../shared/data beside the repository)")
    table, problems = read_reports_csv(
        caers, columns={"report_id": "id", "drug": "var1", "event": "var2"}
    )
    with caers.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert problems == []
    assert table.column_names == ["report_id", "drug", "event", "strat1"]
    assert table.num_rows == len({(r["id"], r["var1"], r["var2"]) for r in rows})
    assert len(set(table["report_id"].to_pylist())) == 3356
