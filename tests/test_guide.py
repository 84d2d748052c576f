"""docs/guide.md runs: its `python` and `console run` blocks, in order, in one empty folder.

A `console run` block is lines of `$ command` (run by bash, `dmtwatch` being this
checkout's CLI), each followed by lines of its expected output: each such line must
appear in what the command printed (a line `...` stands for anything). A command must
exit 0; one that shows a failure says so itself (`...; echo "exit $?"`). `python`
blocks share one namespace. A block fenced plain `console` is shown, not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[1] / "docs" / "guide.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.M | re.S)


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)


def blocks(text: str) -> list[tuple[str, str]]:
    """(kind, body) of each block to run, in order: kind 'python' or 'console'."""
    out = []
    for info, body in FENCE.findall(text):
        words = info.split()
        if words == ["python"]:
            out.append(("python", body))
        elif words == ["console", "run"]:
            out.append(("console", body))
    return out


def commands(body: str) -> list[Command]:
    out: list[Command] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            out.append(Command(line[2:]))
        elif line.strip() and line.strip() != "...":
            assert out, f"output before any command: {line!r}"
            out[-1].expected.append(line.rstrip())
    return out


def test_the_guide_has_blocks_to_run() -> None:
    found = blocks(GUIDE.read_text(encoding="utf-8"))
    kinds = [k for k, _ in found]
    assert kinds.count("python") >= 4 and kinds.count("console") >= 5


# the guide's CDS Hooks example uses FastAPI's TestClient, which warns about its httpx
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "dmtwatch"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m dmtwatch "$@"\n')
    wrapper.chmod(0o755)
    src = str(Path(__file__).parents[1] / "src")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
        "COLUMNS": "160",
    }
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    namespace: dict = {"__name__": "guide"}
    for number, (kind, body) in enumerate(blocks(GUIDE.read_text(encoding="utf-8")), 1):
        if kind == "python":
            exec(compile(body, f"{GUIDE.name} block {number}", "exec"), namespace)
            continue
        for command in commands(body):
            done = subprocess.run(
                ["bash", "-c", command.line],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            said = done.stdout + done.stderr
            assert done.returncode == 0, f"$ {command.line}\nexit {done.returncode}\n{said}"
            for line in command.expected:
                assert line.strip() in said or line.rstrip(". ") in said, (
                    f"$ {command.line}\nexpected: {line!r}\ngot:\n{said}"
                )
