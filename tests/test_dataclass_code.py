"""The compiled methods of dataclasses, cached per machine: a later process compiles none of them,
the classes behave exactly as without the cache, and a bad or unwritable cache only costs time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLASSES = '''
import dataclasses, json, sys
from dataclasses import dataclass, field

@dataclass(frozen=True)
class Node:
    name: str
    line: int = 0
    tags: tuple = ()
    body: dict = field(default_factory=dict, repr=False, compare=False)

@dataclass(order=True)
class Point:
    x: float
    y: float = 1.5

n = Node("a", 3, ("t",), {"k": 1})
try:
    n.name = "b"
    frozen = "no"
except dataclasses.FrozenInstanceError as exc:
    frozen = type(exc).__name__
facts = {"repr": repr(n), "eq": n == Node("a", 3, ("t",), {"other": 2}), "hash": hash(n) == hash(Node("a", 3, ("t",))),
         "frozen": frozen, "default": Node("x").body, "order": Point(1, 2) < Point(1, 3),
         "init_annotations": sorted(f"{k}={v!r}" for k, v in Node.__init__.__annotations__.items()),
         "replace": repr(dataclasses.replace(n, line=9)), "fields": [f.name for f in dataclasses.fields(Node)]}
'''


def _run(code: str, cache: Path, install: bool = True) -> dict:
    script = ("from runner.runtime import dataclass_code\n"
              + ("dataclass_code.install()\n" if install else "")
              + CLASSES
              + "facts['compiled_here'] = dataclass_code._fresh\n"
              + code
              + "print(json.dumps(facts))\n")
    env = {**os.environ, "LKRUN_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_compiles_nothing_and_its_classes_behave_as_without_the_cache(tmp_path):
    plain = _run("", tmp_path / "unused", install=False)
    first = _run("facts['saved'] = dataclass_code.save()\n", tmp_path)
    second = _run("facts['saved'] = dataclass_code.save()\n", tmp_path)
    assert first["compiled_here"] > 10 and first["saved"] is True
    assert second["compiled_here"] == 0 and second["saved"] is False  # nothing new: nothing written
    for facts in (first, second):
        for key in ("repr", "eq", "hash", "frozen", "default", "order", "init_annotations", "replace", "fields"):
            assert facts[key] == plain[key], key
    assert plain["frozen"] == "FrozenInstanceError" and "body" not in plain["repr"] and plain["eq"] is True
    assert plain["init_annotations"][0] == "body=<class 'dict'>"  # not '_type_body': our __future__ is not inherited


def test_an_unreadable_cache_is_an_empty_one_and_an_unwritable_folder_only_costs_time(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    probe = _run("facts['file'] = str(dataclass_code.cache_file())\n", folder)
    Path(probe["file"]).write_bytes(b"\x00not marshal at all")
    broken = _run("facts['saved'] = dataclass_code.save()\n", folder)
    assert broken["compiled_here"] > 10 and broken["saved"] is True  # read as empty, then replaced
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    unwritable = _run("facts['saved'] = dataclass_code.save()\nfacts['still_fresh'] = dataclass_code._fresh\n",
                      blocked / "lkrun")
    assert unwritable["saved"] is False and unwritable["still_fresh"] == unwritable["compiled_here"] > 0


def test_another_exec_already_given_to_dataclasses_is_left_alone(tmp_path):
    script = ("import dataclasses\nfrom runner.runtime import dataclass_code\n"
              "mine = lambda *a: exec(*a)\ndataclasses.exec = mine\n"
              "print(dataclass_code.install(), dataclasses.exec is mine)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "LKRUN_CACHE_DIR": str(tmp_path)})
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_the_lkrun_program_installs_it_and_validate_saves_what_it_compiled(tmp_path):
    env = {**os.environ, "LKRUN_CACHE_DIR": str(tmp_path)}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "runner.cli", "validate", "bots/greeter.yaml"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        runs.append(sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("dataclass-code-")))
    assert len(runs[0]) == 1 and runs[0] == runs[1]
    assert (tmp_path / runs[0][0]).stat().st_size > 1000
