"""Records: round trip, atomic writes, newer schemas refused by name, older ones upgraded, bad files named."""

from __future__ import annotations

import json
import os

import pytest

from snnbench import records
from snnbench.errors import RecordError
from snnbench.records import SCHEMA_VERSION, RecordStore, RunRecord, read_record


def a_record() -> RunRecord:
    return RunRecord(
        run_id="bptt_T2_s0_smoke_0123abcd",
        suite="tiny",
        suite_version=1,
        entry="bptt",
        algorithm="bptt",
        algorithm_version=1,
        algorithm_source_sha256="0" * 64,
        dataset="digits",
        T=2,
        seed=0,
        budget="smoke",
        spec={},
        spec_hash="0123abcd" * 8,
        status="ok",
        metrics={"top1": 87.5},
        started_at="2026-12-01T00:00:00+00:00",
        finished_at="2026-12-01T00:01:00+00:00",
    )


@pytest.fixture
def saved(tmp_path):
    return RecordStore(tmp_path, "tiny").save(a_record())


def test_a_saved_record_reads_back_equal(saved):
    assert read_record(saved) == a_record()


def test_records_are_written_atomically(saved, monkeypatch):
    before = saved.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        RecordStore(saved.parents[2], "tiny").save(a_record().model_copy(update={"status": "failed"}))
    assert saved.read_bytes() == before  # the old record is intact
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left


def test_a_record_from_a_newer_schema_is_refused_by_name(saved):
    data = json.loads(saved.read_text())
    saved.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(RecordError) as info:
        read_record(saved)
    assert str(info.value) == (
        f"{saved}: was written with record schema {SCHEMA_VERSION + 1}; "
        f"this snnbench reads up to {SCHEMA_VERSION}: upgrade"
    )


def test_an_older_record_goes_through_every_upgrade_in_order(saved, monkeypatch):
    """With schema N + 2 current, a schema-N record is read through upgrade N → N+1 and N+1 → N+2."""
    steps = []

    def upgrade(data):
        steps.append(data["schema_version"])
        return {**data, "schema_version": data["schema_version"] + 1}

    monkeypatch.setattr(records, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    monkeypatch.setattr(records, "UPGRADES", {SCHEMA_VERSION: upgrade, SCHEMA_VERSION + 1: upgrade})
    assert read_record(saved).schema_version == SCHEMA_VERSION + 2
    assert steps == [SCHEMA_VERSION, SCHEMA_VERSION + 1]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not a readable JSON record"),
        (json.dumps({"run_id": "x"}), "has no schema_version"),
        (json.dumps({"schema_version": SCHEMA_VERSION, "run_id": "x"}), "does not match the record schema"),
    ],
)
def test_unreadable_records_name_the_file_and_the_reason(tmp_path, text, reason):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RecordError, match=f"^{path}: {reason}"):
        read_record(path)
