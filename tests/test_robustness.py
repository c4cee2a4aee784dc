"""Robustness: kill -9 in every stage, a full disk, permission denied, crashing stages.

The pipeline under test is the full seven-stage SIDL example (pipelines/sidl.yaml with its
sample data), with the workdir, the pseudonym key and the export folder moved into a
temporary folder.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from qualpipe import store as store_mod
from qualpipe.anonymise.keyfile import KeyStore
from qualpipe.errors import QualpipeError
from qualpipe.fingerprint import sha256_file
from qualpipe.store import STAGING, dataset_fingerprint, read_manifest
from qualpipe.testing import Result, invoke

ROOT = Path(__file__).resolve().parents[1]
SIDL = ROOT / "pipelines" / "sidl.yaml"
STAGES = ["ingest", "anonymise", "segment", "codebook", "code", "theme", "export"]
EXIT_STAGE_FAILED = 1  # docs/cli.md: "a stage failed (nothing of it was committed)"
EXIT_INVALID = 2


def run_args(base: Path, *extra: str) -> list[str]:
    """``qualpipe run`` of the SIDL pipeline with everything it writes below ``base``."""
    return [
        "--log-level",
        "error",
        "run",
        str(SIDL),
        "--workdir",
        str(base / "wd"),
        "--set",
        f"anonymise.key={base / 'key.json'}",
        "--set",
        f"export.out={base / 'exports'}",
        *extra,
    ]


def stage_dirs(wd: Path) -> list[Path]:
    return sorted(p for p in wd.iterdir() if p.is_dir() and not p.name.startswith("."))


def staging_leftovers(wd: Path) -> list[Path]:
    staging = wd / STAGING
    return sorted(staging.iterdir()) if staging.is_dir() else []


def assert_nothing_half_written_is_trusted(wd: Path) -> None:
    """Every stage folder in place is complete: manifest, listed files, sizes and hashes."""
    if not wd.is_dir():
        return
    for d in stage_dirs(wd):
        assert d.name in STAGES, d
        manifest = read_manifest(d)
        assert manifest is not None, f"{d} is in place but not complete"
        for name, out in manifest["outputs"].items():
            assert dataset_fingerprint(d / name, out["files"]) == out["fingerprint"], d / name
            for fname in out["files"]:
                pq.read_metadata(d / name / fname)  # a whole Parquet file, footer included


def assert_key_intact(key: Path, want: bytes) -> None:
    assert key.read_bytes() == want
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def error_lines(result: Result) -> list[str]:
    """The lines qualpipe itself printed on stderr (logs are silenced with --log-level)."""
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.startswith("qualpipe:")]


def snapshot(wd: Path) -> dict[str, Any]:
    """What a run produced, comparable between workdirs (the export folder differs)."""
    got: dict[str, Any] = {}
    for sid in STAGES:
        manifest = read_manifest(wd / sid)
        assert manifest is not None, sid
        outputs = {
            name: (out["rows"], out["fingerprint"])
            for name, out in manifest["outputs"].items()
            if sid != "export"  # lists absolute paths in the export folder
        }
        # the export stage's fingerprint includes its `out` folder, which differs
        got[sid] = (manifest["fingerprint"] if sid != "export" else None, outputs)
    return got


def assert_exports_consistent(wd: Path, out: Path) -> list[tuple[str, str]]:
    """Every file the exports dataset lists exists with its size and hash; return them."""
    table = pq.read_table(wd / "export" / "exports")
    listed = []
    for row in table.to_pylist():
        path = Path(row["path"])
        assert path.parent == out or out in path.parents, path
        assert path.stat().st_size == row["bytes"]
        assert sha256_file(path) == row["sha256"]
        listed.append((row["format"], str(path.relative_to(out))))
    assert not (out.parent / f".{out.name}.staging").exists()
    return sorted(listed)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the SIDL pipeline: wd/, key.json and exports/."""
    base = tmp_path_factory.mktemp("reference")
    result = invoke(run_args(base))
    assert result.exit_code == 0, result.output
    return base


@pytest.fixture
def project(reference: Path, tmp_path: Path) -> Path:
    """A copy of the reference run (workdir, key, exports) to break things in."""
    base = tmp_path / "p"
    shutil.copytree(reference, base, symlinks=True)
    return base


# -- 1. kill -9 at random points in every stage ------------------------------------------

# Slows every write of a Parquet file and every rename by QP_SLOW seconds, so that a kill
# lands inside a stage rather than between stages; then runs the qualpipe CLI.
SLOW_MAIN = """\
import os, pathlib, sys, time

delay = float(os.environ.get("QP_SLOW") or 0)
if delay:
    import pyarrow.parquet as pq

    def slowed(fn):
        def wrapper(*args, **kwargs):
            time.sleep(delay)
            return fn(*args, **kwargs)
        return wrapper

    pq.write_table = slowed(pq.write_table)
    pq.ParquetWriter.write_table = slowed(pq.ParquetWriter.write_table)
    pathlib.Path.rename = slowed(pathlib.Path.rename)
    pathlib.Path.replace = slowed(pathlib.Path.replace)

if __name__ == "__main__":  # not in spawned worker processes, which import this file
    from qualpipe.cli import main

    sys.exit(main())
"""


def kill_test_args(base: Path, key: Path) -> list[str]:
    args = run_args(base)
    args[args.index(f"anonymise.key={base / 'key.json'}")] = f"anonymise.key={key}"
    return args


@pytest.mark.slow
def test_kill_9_in_every_stage_then_rerun_matches_reference(tmp_path: Path) -> None:
    kill_and_rerun(tmp_path, (), seeds=(1, 2, 3), fast_kills=4)


@pytest.mark.slow
def test_kill_9_with_worker_processes_then_rerun_matches_reference(tmp_path: Path) -> None:
    """With ``--workers 2`` the batch stages, anonymise and export run in worker
    processes that write part files into the staging folder: killed runs must leave
    nothing a re-run trusts or keeps, and the outputs equal those of one process."""
    kill_and_rerun(tmp_path, ("--workers", "2"), seeds=(5,), fast_kills=3)


def kill_and_rerun(
    tmp_path: Path, extra: tuple[str, ...], seeds: tuple[int, ...], fast_kills: int
) -> None:
    """Kill -9 runs at random moments in every stage (``extra``: more CLI options), re-run
    after each kill, and compare the final outputs with an uninterrupted run without
    ``extra`` options."""
    main = tmp_path / "slow_main.py"
    main.write_text(SLOW_MAIN, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("QUALPIPE_DEBUG", "QP_SLOW")}
    # every run shares the reference's key: same pseudonyms, same fingerprints
    key = tmp_path / "key.json"

    def start(base: Path, slow: float, options: tuple[str, ...] = extra) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(main), *kill_test_args(base, key), *options],
            env={**env, "QP_SLOW": str(slow)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def finish(base: Path, options: tuple[str, ...] = extra) -> None:
        proc = start(base, 0, options)
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()

    ref = tmp_path / "ref"
    t0 = time.monotonic()
    finish(ref, ())
    duration = time.monotonic() - t0
    if extra:  # how long a run with ``extra`` takes
        t0 = time.monotonic()
        finish(tmp_path / "timing")
        duration = time.monotonic() - t0
    want = snapshot(ref / "wd")
    want_exports = assert_exports_consistent(ref / "wd", ref / "exports")
    want_key = key.read_bytes()
    kills = 0

    def kill(proc: subprocess.Popen[bytes], base: Path) -> None:
        nonlocal kills
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        assert_nothing_half_written_is_trusted(base / "wd")
        assert_key_intact(key, want_key)

    def check_final(base: Path) -> None:
        wd = base / "wd"
        assert staging_leftovers(wd) == []
        assert not (wd / ".trash").exists() or not any((wd / ".trash").iterdir())
        assert_nothing_half_written_is_trusted(wd)
        assert snapshot(wd) == want
        assert assert_exports_consistent(wd, base / "exports") == want_exports
        assert_key_intact(key, want_key)
        leftovers = [p.name for p in key.parent.iterdir() if p.name.startswith(f".{key.name}.")]
        # a kill during the key's save may leave its (0600) temp file; never a broken key
        for name in leftovers:
            assert stat.S_IMODE((key.parent / name).stat().st_mode) == 0o600

    # (a) slow mode: for each stage in turn, kill at a random moment after it started
    # writing; re-run after each kill without clearing anything.
    for seed in seeds:
        rng = random.Random(seed)
        base = tmp_path / f"slow{seed}"
        for target in STAGES:
            if read_manifest(base / "wd" / target) is not None:
                continue  # completed before the previous kill landed
            before = set(staging_leftovers(base / "wd")) if (base / "wd").is_dir() else set()
            proc = start(base, 0.03)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if (base / "wd").is_dir() and any(
                    p.name.startswith(f"{target}-") and p not in before
                    for p in staging_leftovers(base / "wd")
                ):
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.25))
            kill(proc, base)
        finish(base)
        check_final(base)

    # (b) fast mode: kill at random times spread over the measured run time, several
    # times in the same workdir, then finish.
    rng = random.Random(4 + len(extra))
    base = tmp_path / "fast"
    for _ in range(fast_kills):
        proc = start(base, 0)
        time.sleep(rng.uniform(0.2, 1.0) * duration)
        kill(proc, base)
    finish(base)
    check_final(base)
    assert kills >= len(seeds) * 4  # most kills landed while a run was under way


# -- 2. disk full ---------------------------------------------------------------------


def enospc_after(n: int) -> Callable[..., Any]:
    """Wraps a writing function to fail like a full disk on its call number n + 1."""
    calls = {"n": 0}

    def fail(orig: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == n + 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return orig(*args, **kwargs)

        return wrapper

    return fail


FAULTS = {
    # whole-dataset stages stream through a ParquetWriter
    "theme-parquet-writer": ("theme", pq.ParquetWriter, "write_table", 2),
    # batch stages write whole part files
    "code-write-part": ("code", pq, "write_table", 0),
    # the manifest, written last
    "segment-manifest": ("segment", store_mod.os, "fsync", 0),
    # the move into place, after the previous output was moved aside (the 3rd rename,
    # after the manifest's and the previous output's)
    "codebook-swap": ("codebook", Path, "rename", 2),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_disk_full_while_a_stage_writes_keeps_the_previous_output(
    project: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    stage, owner, attr, n = FAULTS[fault]
    wd = project / "wd"
    before = (wd / stage / "manifest.json").read_bytes()
    with monkeypatch.context() as m:
        m.setattr(owner, attr, enospc_after(n)(getattr(owner, attr)))
        result = invoke(run_args(project, "--only", stage))
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qualpipe: error: stage {stage!r}")
    assert "No space left on device" in lines[0]
    # the previous complete output is intact, nothing staged is left
    assert (wd / stage / "manifest.json").read_bytes() == before
    assert_nothing_half_written_is_trusted(wd)
    assert staging_leftovers(wd) == []
    again = invoke(run_args(project, "--only", stage))
    assert again.exit_code == 0, again.output
    assert_nothing_half_written_is_trusted(wd)
    assert staging_leftovers(wd) == []


def test_disk_full_on_a_first_run_commits_nothing_of_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        # ingest writes two outputs: fail on the second
        m.setattr(
            pq.ParquetWriter,
            "write_table",
            enospc_after(1)(pq.ParquetWriter.write_table),
        )
        result = invoke(run_args(tmp_path))
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "stage 'ingest'" in lines[0], result.stderr
    assert "No space left on device" in lines[0]
    assert stage_dirs(tmp_path / "wd") == []
    assert staging_leftovers(tmp_path / "wd") == []
    again = invoke(run_args(tmp_path))
    assert again.exit_code == 0, again.output
    assert [d.name for d in stage_dirs(tmp_path / "wd")] == sorted(STAGES)


def test_disk_full_while_saving_the_key_keeps_the_previous_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = project / "key.json"
    want = key.read_bytes()
    wd = project / "wd"
    before = (wd / "anonymise" / "manifest.json").read_bytes()
    real_fsync = os.fsync

    def full(fd: int) -> None:
        if Path(f"/proc/self/fd/{fd}").resolve().name.endswith(".tmp") and str(
            Path(f"/proc/self/fd/{fd}").resolve()
        ).startswith(str(project)):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    result = invoke(run_args(project, "--only", "anonymise"))
    monkeypatch.undo()
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "stage 'anonymise'" in lines[0]
    assert f"cannot write pseudonym key {str(key)!r}: No space left on device" in lines[0]
    assert_key_intact(key, want)
    assert sorted(p.name for p in key.parent.iterdir()) == ["exports", "key.json", "wd"]
    assert (wd / "anonymise" / "manifest.json").read_bytes() == before
    assert staging_leftovers(wd) == []
    # the key is loadable and the next run completes
    assert KeyStore.load(key).entries
    assert invoke(run_args(project, "--only", "anonymise")).exit_code == 0


def test_keystore_save_disk_full_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys" / "k.json"
    ks = KeyStore(path)
    ks.put("PERSON", "Anna", "Person 1")
    ks.save()
    want = path.read_bytes()
    ks.put("PERSON", "Bertil", "Person 2")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(QualpipeError, match="No space left on device") as info:
        ks.save()
    monkeypatch.undo()
    assert "\n" not in str(info.value)
    assert_key_intact(path, want)
    assert [p.name for p in path.parent.iterdir()] == ["k.json"]


# -- 3. permission denied -------------------------------------------------------------


@pytest.fixture
def deny_mkdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``deny(path)``: creating ``path`` or anything below it raises EACCES."""
    denied: list[Path] = []
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        target = self.absolute()
        for d in denied:
            if target == d or d in target.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    yield denied.append


def test_permission_denied_on_the_workdir(
    tmp_path: Path, deny_mkdir: Callable[[Path], None]
) -> None:
    deny_mkdir(tmp_path / "wd")
    result = invoke(run_args(tmp_path))
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert lines == [
        f"qualpipe: error: cannot use workdir {str(tmp_path / 'wd')!r}: Permission denied; "
        "choose another with --workdir"
    ]
    assert not (tmp_path / "wd").exists()
    assert not (tmp_path / "key.json").exists()


def test_permission_denied_on_the_staging_folder(
    project: Path, deny_mkdir: Callable[[Path], None]
) -> None:
    wd = project / "wd"
    before = (wd / "segment" / "manifest.json").read_bytes()
    deny_mkdir(wd / STAGING)
    result = invoke(run_args(project, "--only", "segment"))
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qualpipe: error: stage 'segment'"), lines[0]
    assert "Permission denied" in lines[0] and f"workdir {str(wd)!r}" in lines[0]
    assert "hook" not in lines[0]  # not blamed on a plugin's hook wrapper
    assert (wd / "segment" / "manifest.json").read_bytes() == before


def test_permission_denied_on_the_key_folder(
    tmp_path: Path, deny_mkdir: Callable[[Path], None]
) -> None:
    keydir = tmp_path / "keys"
    deny_mkdir(keydir)
    args = run_args(tmp_path)
    args[args.index(f"anonymise.key={tmp_path / 'key.json'}")] = (
        f"anonymise.key={keydir / 'key.json'}"
    )
    result = invoke(args)
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qualpipe: error: stage 'anonymise'")
    assert str(keydir / "key.json") in lines[0]
    assert "Permission denied" in lines[0] and "permissions" in lines[0]
    wd = tmp_path / "wd"
    assert [d.name for d in stage_dirs(wd)] == ["ingest"]  # anonymise committed nothing
    assert staging_leftovers(wd) == []
    assert not keydir.exists()


def test_permission_denied_opening_the_key_temp_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = project / "key.json"
    want = key.read_bytes()
    real_open = os.open

    def deny(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if Path(path).parent == project and str(Path(path).name).startswith(".key.json."):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    result = invoke(run_args(project, "--only", "anonymise"))
    monkeypatch.undo()
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert f"cannot write pseudonym key {str(key)!r}: Permission denied" in lines[0]
    assert_key_intact(key, want)
    assert sorted(p.name for p in project.iterdir()) == ["exports", "key.json", "wd"]


def test_world_readable_key_is_tightened_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ks = KeyStore(path)
    ks.put("PERSON", "Anna", "Person 1")
    ks.save()
    path.chmod(0o644)
    loaded = KeyStore.load(path)
    assert loaded.get("PERSON", "Anna") == "Person 1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_key_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ks = KeyStore(tmp_path / "new" / "k.json")
        ks.put("PERSON", "Anna", "Person 1")
        ks.save()
        ks.put("PERSON", "Bertil", "Person 2")
        ks.save()  # replacing it keeps the mode too
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "k.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


# -- 4. a crash inside a stage --------------------------------------------------------


class Boom(RuntimeError):
    pass


def test_a_crashing_exporter_keeps_the_previous_export_folder(
    project: Path, qualpipe_plugin: Callable[..., str]
) -> None:
    from qualpipe import hookimpl
    from qualpipe.exporters import Exporter

    def explode(bundle: Any) -> list[Path]:
        # writes something first, as a real exporter would before failing
        (Path(bundle.out_dir) / "half.docx").write_bytes(b"PK\x03\x04")
        raise Boom("template missing")

    class BoomPlugin:
        @hookimpl
        def qualpipe_register_exporters(self, register: Any) -> None:
            register(Exporter("boom", explode))

    qualpipe_plugin(BoomPlugin(), "boom-exporter")
    out = project / "exports"
    wd = project / "wd"
    files = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert files
    before = (wd / "export" / "manifest.json").read_bytes()
    # the failing exporter runs after some that succeed
    formats = "export.formats=[qdpx, qdc, html, boom, docx, xlsx, csv]"
    result = invoke(run_args(project, "--only", "export", "--set", formats))
    assert result.exit_code == EXIT_STAGE_FAILED, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qualpipe: error: stage 'export'")
    assert "Boom: template missing" in lines[0]
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == files
    assert not (out.parent / f".{out.name}.staging").exists()
    assert (wd / "export" / "manifest.json").read_bytes() == before
    assert staging_leftovers(wd) == []
