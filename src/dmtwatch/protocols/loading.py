"""The protocols in force: the shipped files, a clinic's own protocol files and overlays.

A `ProtocolSet` is one immutable value: the validated protocols (overlays applied), the
file each came from, every overlay change (the shipped value, the new one, the overlay
file and its note) and a digest of every input file. Two sets read from the same files
are equal and hash alike, so the compiled plan is cached per set (`engine.run._plan_for`
in memory, `engine.plan_cache` on disk, whose key includes the digest).

Clinic folders (`--protocols DIR`, or `[protocols] dirs` in `dmtwatch.toml`) hold `.yaml`
files of two kinds:

- a protocol (top-level `id`): a therapy the shipped files do not cover, same schema;
- an overlay (top-level `overlay`: the id of the protocol it changes) with `changes`, each
  a `path` into the loaded protocol, the new `value`, `source: LOCAL-POLICY` and a `note`
  saying who decided it and why. The path must exist (list items are picked by their
  keys: `schedule[id=tsh].interval_days`, `grading[test=lymphocytes].grades.4.below`).

Every problem in every file is reported at once, each naming the file, the key path and
why (`ProtocolError`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dmtwatch.errors import InputError
from dmtwatch.protocols.schema import Protocol

LOCAL_POLICY = "LOCAL-POLICY"
CONFIG_FILE = "dmtwatch.toml"
CONFIG_ENV = "DMTWATCH_CONFIG"
# Files of the protocols package that are not protocols.
# Shared files every protocol reads (the CTCAE table, the shared wording): not protocols
# themselves, but inputs of each.
CRITERIA_FILES = ("ctcae.yaml", "wording.yaml")
# What an overlay may not change: a protocol's identity and drug, rule codes, the CTCAE
# term a rule grades by (change its grades instead), and citations (LOCAL-POLICY is added).
_FIXED = {"id", "drug", "code", "ctcae", "sources", "source"}


@dataclass(frozen=True)
class FileProblem:
    file: str
    path: str  # the key path in the file ('' for the file as a whole)
    why: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.why}" if self.path else f"{self.file}: {self.why}"


class ProtocolError(InputError):
    """Protocol, overlay or configuration files refused; `problems` lists them all (the
    CLI prints one line each and exits as for any input it cannot use)."""

    def __init__(self, problems: Sequence[FileProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Change:
    """One value an overlay changed."""

    protocol: str
    path: str
    shipped: Any
    value: Any
    file: str
    note: str


@dataclass(frozen=True, eq=False)
class ProtocolSet:
    protocols: tuple[Protocol, ...]
    files: tuple[tuple[str, str], ...]  # (protocol id, the file it was read from)
    overlays: tuple[str, ...] = ()  # overlay files applied
    changes: tuple[Change, ...] = ()
    digest: str = field(default="", repr=False)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProtocolSet) and other.digest == self.digest

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.protocols)

    def get(self, protocol_id: str) -> Protocol:
        for p in self.protocols:
            if p.id == protocol_id:
                return p
        raise KeyError(f"no protocol {protocol_id!r} in force (have: {', '.join(self.ids)})")

    def file_of(self, protocol_id: str) -> str:
        return dict(self.files)[protocol_id]

    def select(self, ids: Sequence[str]) -> ProtocolSet:
        """The set of just these protocols (in this order), with their overlay changes."""
        chosen = tuple(self.get(i) for i in ids)
        keep = set(ids)
        digest = hashlib.sha256(f"{self.digest}|{'|'.join(ids)}".encode()).hexdigest()
        return ProtocolSet(
            chosen,
            tuple((i, f) for i, f in self.files if i in keep),
            tuple(dict.fromkeys(c.file for c in self.changes if c.protocol in keep)),
            tuple(c for c in self.changes if c.protocol in keep),
            digest,
        )

    @property
    def is_shipped(self) -> bool:
        return not self.changes and all(f.startswith("shipped:") for _, f in self.files)

    def summary(self) -> str:
        """One line: the protocols in force and the overlays changing them."""
        names = ", ".join(
            f"{i} ({'shipped' if f.startswith('shipped:') else f})" for i, f in self.files
        )
        line = f"Protocols in force: {names}"
        if self.changes:
            by_file: dict[str, list[str]] = {}
            for c in self.changes:
                by_file.setdefault(c.file, []).append(
                    f"{c.protocol} {c.path} {_show(c.shipped)} -> {_show(c.value)}"
                )
            line += "; overlays (LOCAL-POLICY): " + "; ".join(
                f"{f}: {', '.join(items)}" for f, items in by_file.items()
            )
        return line + "."

    def methods_entry(self) -> dict[str, str]:
        """The audit's Methods line: what was in force and every local change."""
        return {"term": "Protocols in force", "definition": self.summary()}

    def listing(self) -> list[dict[str, Any]]:
        """Each protocol in force: its file and every value an overlay changed."""
        return [
            {
                "id": p.id,
                "title": p.title,
                "version": p.version,
                "drug": p.therapy.drug,
                "file": display_file(self.file_of(p.id)),
                "changes": [
                    {
                        "path": c.path,
                        "shipped": c.shipped,
                        "value": c.value,
                        "overlay": c.file,
                        "note": c.note,
                    }
                    for c in self.changes
                    if c.protocol == p.id
                ],
            }
            for p in self.protocols
        ]

    @classmethod
    def shipped(cls) -> ProtocolSet:
        return cls.load(())

    @classmethod
    def load(cls, dirs: Sequence[Path | str] = ()) -> ProtocolSet:
        """The shipped protocols plus the protocol and overlay files in `dirs`."""
        inputs, problems = _inputs(dirs)
        h = hashlib.sha256()
        for label, data in inputs:
            h.update(len(label).to_bytes(4, "big") + label.encode())
            h.update(len(data).to_bytes(8, "big") + data)
        digest = h.hexdigest()
        if problems or digest not in _LOADED:  # every problem of every file, at once
            _LOADED[digest] = _build(inputs, digest, problems)
        return _LOADED[digest]


_LOADED: dict[str, ProtocolSet] = {}


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def display_file(label: str) -> str:
    """Where a protocol was read from: a clinic file's path, or the installed shipped one."""
    if label.startswith("shipped:"):
        return str(files("dmtwatch.protocols").joinpath(label.removeprefix("shipped:")))
    return label


def shipped_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in files("dmtwatch.protocols").iterdir()
        if p.name.endswith(".yaml") and p.name not in CRITERIA_FILES
    )


def _inputs(dirs: Sequence[Path | str]) -> tuple[list[tuple[str, bytes]], list[FileProblem]]:
    """(label, bytes) of every input: the criteria table, the shipped protocols (labelled
    `shipped:NAME.yaml`), then each clinic folder's .yaml files in name order."""
    package = files("dmtwatch.protocols")
    out = [(f"shipped:{name}", package.joinpath(name).read_bytes()) for name in CRITERIA_FILES]
    out += [
        (f"shipped:{n}.yaml", package.joinpath(f"{n}.yaml").read_bytes()) for n in shipped_names()
    ]
    problems = []
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            problems.append(FileProblem(str(folder), "", "no such folder of protocol files"))
            continue
        found = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not found:
            problems.append(FileProblem(str(folder), "", "holds no .yaml protocol or overlay file"))
        for p in found:
            try:
                out.append((str(p), p.read_bytes()))
            except OSError as e:
                problems.append(FileProblem(str(p), "", f"cannot be read: {e.strerror}"))
    return out, problems


def _build(
    inputs: list[tuple[str, bytes]], digest: str, problems: list[FileProblem]
) -> ProtocolSet:
    problems = list(problems)
    raw_protocols: list[tuple[str, dict]] = []
    overlays: list[tuple[str, dict]] = []
    for label, data in inputs:
        if label.removeprefix("shipped:") in CRITERIA_FILES:
            continue
        try:
            doc = yaml.safe_load(data.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            problems.append(FileProblem(label, "", f"not valid YAML: {_one_line(e)}"))
            continue
        if isinstance(doc, dict) and "overlay" in doc:
            overlays.append((label, doc))
        elif isinstance(doc, dict) and "id" in doc:
            raw_protocols.append((label, doc))
        else:
            problems.append(
                FileProblem(
                    label, "", "neither a protocol (top-level `id`) nor an overlay (`overlay`)"
                )
            )
    protocols: dict[str, tuple[str, dict, Protocol]] = {}
    for label, doc in raw_protocols:
        pid = doc.get("id")
        if pid in protocols:
            other = protocols[pid][0]
            why = (
                "a shipped protocol has this id: change it with an overlay (`overlay: "
                f"{pid}`) citing LOCAL-POLICY"
                if other.startswith("shipped:")
                else f"the same id as {other}"
            )
            problems.append(FileProblem(label, "id", why))
            continue
        problems += _copied_grades(label, doc)
        try:
            protocol = Protocol.model_validate(doc)
        except ValidationError as e:
            problems += _validation_problems(label, e, {})
            continue
        protocols[protocol.id] = (label, doc, protocol)

    changes: list[Change] = []
    changed: dict[str, list[str]] = {}  # protocol id -> overlay files
    merged: dict[str, dict] = {}
    # (protocol id, location in it) -> (overlay file, path, "changes[n]")
    set_by: dict[tuple[str, tuple], tuple[str, str, str]] = {}
    for label, doc in overlays:
        target, items, more = _overlay_shape(label, doc, protocols)
        problems += more
        if target is None:
            continue
        tree = merged.setdefault(target, protocols[target][2].model_dump())
        for n, (item, ok) in enumerate(items):
            where = f"changes[{n}]"
            path = item.get("path")
            if not isinstance(path, str):
                continue
            try:  # a refused change's path is checked too: every problem at once
                parent, key, loc = _locate(tree, path)
            except _PathError as e:
                problems.append(FileProblem(label, f"{where}.path", f"{path}: {e}"))
                continue
            if not ok:
                continue
            overlap = next(
                (v for (i, other), v in set_by.items() if i == target and _overlaps(loc, other)),
                None,
            )
            if overlap is not None:
                problems.append(
                    FileProblem(
                        label,
                        f"{where}.path",
                        f"{path}: also changed by {overlap[0]} ({overlap[1]})",
                    )
                )
                continue
            old = parent[key]
            bad = _type_problem(old, item["value"])
            if bad:
                problems.append(FileProblem(label, f"{where}.value", f"{path}: {bad}"))
                continue
            set_by[(target, loc)] = (label, path, where)
            parent[key] = item["value"]
            change = Change(target, path, old, item["value"], label, item["note"].strip())
            changes.append(change)
            n_local = sum(c.protocol == target for c in changes)
            cite = f"{LOCAL_POLICY}-{n_local}"  # one key per change: a finding cites its own
            _cite_local_policy(tree, loc, cite)
            tree["sources"][cite] = (
                f"Local policy of this clinic ({label}): {path} {_show(old)} -> "
                f"{_show(change.value)}. {change.note}"
            )
            changed.setdefault(target, [])
            if label not in changed[target]:
                changed[target].append(label)
    for pid, tree in merged.items():
        if pid not in changed:
            continue
        try:
            protocol = Protocol.model_validate(tree)
        except ValidationError as e:
            locs = {loc: v for (i, loc), v in set_by.items() if i == pid}
            problems += _validation_problems(", ".join(changed[pid]), e, locs)
            continue
        label, doc, _ = protocols[pid]
        protocols[pid] = (label, doc, protocol)
    if problems:
        files_in_order = list(dict.fromkeys(p.file for p in problems))
        raise ProtocolError(sorted(problems, key=lambda p: files_in_order.index(p.file)))
    ordered = sorted(protocols.values(), key=lambda t: t[2].id)
    return ProtocolSet(
        tuple(p for _, _, p in ordered),
        tuple((p.id, label) for label, _, p in ordered),
        tuple(dict.fromkeys(c.file for c in changes)),
        tuple(changes),
        digest,
    )


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _copied_grades(label: str, doc: dict) -> list[FileProblem]:
    """A protocol file names a CTCAE term; it never copies the table's thresholds."""
    out = []
    for n, rule in enumerate(doc.get("grading") or []):
        if isinstance(rule, dict) and rule.get("ctcae") is not None and "grades" in rule:
            out.append(
                FileProblem(
                    label,
                    f"grading[{n}].grades",
                    "grades come from the CTCAE table (ctcae.yaml) for the `ctcae` term; "
                    "a local threshold is an overlay change citing LOCAL-POLICY",
                )
            )
    return out


def _overlay_shape(
    label: str, doc: dict, protocols: dict
) -> tuple[str | None, list[tuple[dict, bool]], list[FileProblem]]:
    problems = []
    unknown = sorted(set(doc) - {"overlay", "changes"})
    if unknown:
        problems.append(
            FileProblem(
                label,
                unknown[0],
                f"unknown key (an overlay holds `overlay` and `changes`): {', '.join(unknown)}",
            )
        )
    target = doc.get("overlay")
    if not isinstance(target, str) or target not in protocols:
        have = ", ".join(sorted(protocols))
        problems.append(
            FileProblem(label, "overlay", f"no protocol {target!r} to change (have: {have})")
        )
        target = None
    raw = doc.get("changes")
    if not isinstance(raw, list) or not raw:
        problems.append(FileProblem(label, "changes", "a list of one or more changes is required"))
        return None, [], problems
    items = []
    for n, item in enumerate(raw):
        where = f"changes[{n}]"
        wrong = []
        if not isinstance(item, dict):
            problems.append(
                FileProblem(label, where, "a change is a mapping: path, value, source, note")
            )
            items.append(({}, False))  # keeps the numbering of the changes after it
            continue
        extra = sorted(set(item) - {"path", "value", "source", "note"})
        if extra:
            wrong.append(
                FileProblem(
                    label,
                    f"{where}.{extra[0]}",
                    "unknown key (a change: path, value, source, note)",
                )
            )
        missing = [k for k in ("path", "value") if k not in item]
        if missing:
            wrong.append(FileProblem(label, where, f"missing {' and '.join(missing)}"))
        if item.get("source") != LOCAL_POLICY:
            wrong.append(
                FileProblem(
                    label,
                    f"{where}.source",
                    f"every change must cite `source: {LOCAL_POLICY}` (got {item.get('source')!r})",
                )
            )
        note = item.get("note")
        if not isinstance(note, str) or not note.strip():
            wrong.append(
                FileProblem(
                    label, f"{where}.note", "a note saying who decided it and why is required"
                )
            )
        if "path" in item and not isinstance(item["path"], str):
            wrong.append(
                FileProblem(
                    label, f"{where}.path", "a path is text: schedule[id=tsh].interval_days"
                )
            )
        problems += wrong
        items.append((item, not wrong))
    return target, items, problems


def _overlaps(a: tuple, b: tuple) -> bool:
    """One location is the other or inside it (a value and a key of that value)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class _PathError(InputError):
    """A change's path names nothing (caught and reported as a FileProblem)."""


_SEGMENT = re.compile(r"(?P<name>[A-Za-z0-9_]+)(?:\[(?P<sel>[^\]]+)\])?$")


def _segments(path: str) -> list[tuple[str, dict[str, str]]]:
    parts, depth, current = [], 0, ""
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    out = []
    for part in parts:
        m = _SEGMENT.match(part.strip())
        if not m:
            raise _PathError(f"cannot read {part!r} (expected e.g. schedule[id=tsh].interval_days)")
        sel: dict[str, str] = {}
        for pair in (m["sel"] or "").split(","):
            if not pair.strip():
                continue
            k, eq, v = pair.partition("=")
            if not eq:
                raise _PathError(f"{part!r}: pick an item by KEY=VALUE, e.g. [id=tsh]")
            sel[k.strip()] = v.strip()
        out.append((m["name"], sel))
    return out


def _locate(tree: dict, path: str) -> tuple[Any, Any, tuple]:
    """The container and key `path` names in the loaded protocol, and its location."""
    segments = _segments(path)
    node: Any = tree
    loc: list = []
    parent, key = None, None
    for n, (name, sel) in enumerate(segments):
        if not isinstance(node, dict):
            raise _PathError(f"{'.'.join(map(str, loc)) or 'the protocol'} holds no keys")
        key = name
        if key not in node and name.lstrip("-").isdigit() and int(name) in node:
            key = int(name)
        if key not in node:
            known = ", ".join(str(k) for k in node)
            raise _PathError(f"no key {name!r} here (known: {known})")
        if key in _FIXED and not sel and n == len(segments) - 1:
            raise _PathError(f"{name!r} cannot be changed by an overlay")
        parent, node = node, node[key]
        loc.append(key)
        if sel:
            if not isinstance(node, list) or not all(isinstance(x, dict) for x in node):
                raise _PathError(f"{name!r} is not a list of items to pick from")
            hits = [
                i
                for i, x in enumerate(node)
                if all(k in x and str(x[k]) == v for k, v in sel.items())
            ]
            if not hits:
                raise _PathError(f"no item of {name!r} has {_sel_text(sel)}")
            if len(hits) > 1:
                raise _PathError(
                    f"{len(hits)} items of {name!r} have {_sel_text(sel)}: add a key to pick one "
                    "(e.g. test=..., when=...)"
                )
            parent, key, node = node, hits[0], node[hits[0]]
            loc.append(hits[0])
            if n == len(segments) - 1:
                raise _PathError("names a whole item: change its keys one by one")
        elif isinstance(node, list) and n < len(segments) - 1:
            raise _PathError(
                f"{name!r} is a list: pick an item, e.g. {name}[code=...] or {name}[id=...]"
            )
        elif node is None and n < len(segments) - 1:
            raise _PathError(f"{name!r} is not set in this protocol: set it whole")
    return parent, key, tuple(loc)


def _sel_text(sel: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sel.items())


def _type_problem(old: Any, new: Any) -> str | None:
    """The new value must be of the shipped value's kind (pydantic checks the rest)."""
    if old is None:
        return None
    kinds = [
        (bool, "true or false"),
        (int, "a whole number"),
        (float, "a number"),
        (str, "text"),
        (list, "a list"),
        (dict, "a mapping"),
        (tuple, "a list"),
    ]
    for kind, words in kinds:
        if isinstance(old, kind):
            ok = isinstance(new, kind) and not (kind is not bool and isinstance(new, bool))
            if kind is float:
                ok = isinstance(new, int | float) and not isinstance(new, bool)
            if kind is tuple:
                ok = isinstance(new, list | tuple)
            if not ok:
                return f"expected {words} like the shipped value {_show(old)}, got {new!r}"
            return None
    return None


def _cite_local_policy(tree: dict, loc: tuple, cite: str) -> None:
    """Cite the change in the `source` list of the item holding the changed value (the
    rule, schedule item or therapy; the repopulation window's own list)."""
    node: Any = tree
    holder = None
    for k in loc[:-1]:
        node = node[k]
        if isinstance(node, dict) and isinstance(node.get("source"), list):
            holder = node
    if holder is None and str(loc[0]).startswith("repopulation"):
        tree["repopulation_source"] = [*tree["repopulation_source"], cite]
    elif holder is not None:
        holder["source"] = [*holder["source"], cite]


def _loc_text(loc: tuple) -> str:
    return ".".join(str(x) for x in loc)


def _validation_problems(
    label: str, e: ValidationError, locs: dict[tuple, tuple[str, str, str]]
) -> list[FileProblem]:
    """Pydantic's errors, each naming its file and key path: an error at (or inside) a
    value an overlay changed names the overlay, its change and the path it gave."""
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        where = None
        for changed, (file, path, change) in locs.items():
            if loc[: len(changed)] == changed:
                inner = _loc_text(loc[len(changed) :])
                text = f"{path}{'.' + inner if inner else ''}: {msg}"
                where = FileProblem(file, f"{change}.value", text)
        out.append(where or FileProblem(label, _loc_text(loc), msg))
    return out


# --- configuration: which clinic folders are in force ------------------------------------


def config_path(explicit: Path | str | None = None) -> Path | None:
    """`--config FILE`, else $DMTWATCH_CONFIG, else ./dmtwatch.toml if there is one."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    here = Path(CONFIG_FILE)
    return here if here.is_file() else None


def configured_dirs(explicit: Path | str | None = None) -> tuple[Path, ...]:
    """The `[protocols] dirs` of the configuration file (relative to its folder)."""
    path = config_path(explicit)
    if path is None:
        return ()
    label = str(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise ProtocolError([FileProblem(label, "", f"cannot be read: {e.strerror}")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError([FileProblem(label, "", f"not valid TOML: {_one_line(e)}")]) from None
    problems = [
        FileProblem(label, k, "unknown setting (known: [protocols] dirs)")
        for k in doc
        if k != "protocols"
    ]
    section = doc.get("protocols", {})
    if not isinstance(section, dict):
        problems.append(FileProblem(label, "protocols", "a [protocols] table is expected"))
        section = {}
    problems += [
        FileProblem(label, f"protocols.{k}", "unknown setting (known: dirs)")
        for k in section
        if k != "dirs"
    ]
    dirs = section.get("dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        problems.append(FileProblem(label, "protocols.dirs", "a list of folder paths is expected"))
        dirs = []
    if problems:
        raise ProtocolError(problems)
    return tuple(path.parent / d for d in dirs)


_ACTIVE: ProtocolSet | None = None


def protocol_set(dirs: Sequence[Path | str] = (), config: Path | str | None = None) -> ProtocolSet:
    """The shipped protocols, the configuration's folders and `dirs` (e.g. `--protocols`)."""
    return ProtocolSet.load((*configured_dirs(config), *dirs))


def in_force() -> ProtocolSet:
    """The set activated by the command line (`activate`), else the configured default."""
    return _ACTIVE if _ACTIVE is not None else protocol_set()


def active() -> ProtocolSet | None:
    """The set the command line activated, if any."""
    return _ACTIVE


def activate(pset: ProtocolSet | None) -> None:
    global _ACTIVE
    _ACTIVE = pset


@contextmanager
def using(pset: ProtocolSet) -> Iterator[ProtocolSet]:
    before = _ACTIVE
    activate(pset)
    try:
        yield pset
    finally:
        activate(before)
