"""`vmballoon check-c`: a reviewer's check of a driver source against a model variant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from vmballoon.apps.checkc import field_differences, log_difference, regressed
from vmballoon.core.scenario import load_scenario, parse_scenario
from vmballoon.core.variants import FIXED, SEED, Variant
from vmballoon.harness.patches import variant_source
from vmballoon.harness.replay import binary_for

UNLOCK_CHECK = "if (!hv_success || locked != VMW_BALLOON_SUCCESS) {"


def check_c(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", "check-c", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def vmballoon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmballoon", *args], capture_output=True, text=True, check=False
    )


def test_the_seed_against_the_seed_has_no_regression(tmp_path: Path) -> None:
    source = tmp_path / "vmw_balloon.c"
    source.write_text(variant_source(SEED))
    proc = check_c(
        str(source),
        "--against",
        "seed",
        "--examples",
        "40",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression" in proc.stdout and "no divergence" in proc.stdout
    assert "corpus: nothing found" in proc.stdout and "fuzzer: nothing found" in proc.stdout


def test_a_failed_unlock_that_frees_the_page_is_a_regression(tmp_path: Path) -> None:
    """Planted bug: the batched unlock frees pages the host refused to unlock.  The
    written scenario carries the verdict (meta) and the printed replay command shows it."""
    fixed = variant_source(FIXED)
    assert fixed.count(UNLOCK_CHECK) == 1
    source = tmp_path / "planted.c"
    source.write_text(fixed.replace(UNLOCK_CHECK, "if (locked != VMW_BALLOON_SUCCESS) {"))
    out = tmp_path / "out"
    proc = check_c(str(source), "--examples", "60", "--seed", "3", "--out", str(out), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["against"] == "fixed" and report["complete"] is True
    regression = report["regressions"][0]
    assert regression["kind"] == "regression" and regression["origin"] == "corpus"
    assert regression["properties"] == ["host_agreement"]
    assert "freed while the host holds it" in regression["message"]
    scenario = load_scenario(regression["scenario"])
    # the written scenario shows it again: the C breaks host_agreement, FIXED does not
    assert regressed(binary_for(source=source), scenario, FIXED) == ["host_agreement"]
    assert report["divergence"] is not None
    meta = json.loads(Path(regression["scenario"]).read_text())["meta"]
    assert meta["source"] == str(source) and meta["variant"] == "fixed"
    assert meta["property"] == "host_agreement" and meta["seed"] == 3
    assert meta["message"] == regression["message"]
    import hashlib

    assert meta["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    [check_cmd] = [c for c in meta["replay"] if "--impl c" in c and c.endswith("--check")]
    assert check_cmd.startswith("vmballoon replay ")
    shown = vmballoon(*check_cmd.split()[1:])
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "host_agreement" in shown.stdout and "freed while the host holds it" in shown.stdout


def test_strict_fails_on_a_divergence_alone(tmp_path: Path) -> None:
    """A change no property is about (the timer statistic counts twice) is a divergence:
    information by default, a failure with --strict; shown as the one field that differs."""
    source = tmp_path / "stats.c"
    # count timer ticks twice: visible in the state (a divergence), no property cares
    source.write_text(
        variant_source(FIXED).replace(
            "\tSTATS_INC(b->stats.timer);",
            "\tSTATS_INC(b->stats.timer);\n\tSTATS_INC(b->stats.timer);",
        )
    )
    args = ("--examples", "20", "--seed", "1", "--out", str(tmp_path / "o"))
    lenient = check_c(str(source), *args)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    lines = [ln for ln in lenient.stdout.splitlines() if ln.startswith("divergence")]
    assert lines  # the corpus's (and the fuzzer's, when it finds one)
    for line in lines:
        assert line.endswith(": final.stats.timer: model 1, C 2"), line  # not the whole dicts
    assert check_c(str(source), *args, "--strict").returncode == 1


def test_a_divergence_names_only_the_fields_that_differ() -> None:
    stats: dict[str, Any] = {f"s{i}": i for i in range(20)}
    model = {
        "events": [{"ev": "hv", "cmd": "LOCK", "status": 0, "arg1": 5}],
        "final": {"size": 1, "stats": stats},
    }
    c = json.loads(json.dumps(model))
    c["final"]["stats"]["s7"] = 8
    assert log_difference(model, c) == "final.stats.s7: model 7, C 8"
    c = json.loads(json.dumps(model))
    c["events"][0]["status"] = 1
    assert log_difference(model, c) == "event #0 (hv LOCK): status: model 0, C 1"
    assert field_differences([1, 2], [1, 3]) == [": model [1, 2], C [1, 3]"]


def test_a_known_seed_defect_names_its_fix_flag(tmp_path: Path) -> None:
    """The seed with batch_pfn fixed, against the seed: the warn_status_frees leak the
    seed's batch_pfn defect hid is a known defect, named by its fix flag, not a bare
    REGRESSION (found by the corpus, so on every seed)."""
    source = tmp_path / "batch_pfn.c"
    source.write_text(variant_source(Variant(frozenset({"batch_pfn"}))))
    proc = check_c(
        str(source),
        "--against",
        "seed",
        "--examples",
        "5",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "o"),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = [ln for ln in proc.stdout.splitlines() if "no_leak" in ln and "DEFECT" in ln]
    assert line.startswith("KNOWN DEFECT no_leak")
    assert "removed by fix flag warn_status_frees" in line
    assert "REGRESSION" not in proc.stdout


def test_bad_input_is_exit_2_on_one_line(tmp_path: Path) -> None:
    missing = check_c(str(tmp_path / "none.c"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    folder = check_c(str(tmp_path))
    assert folder.returncode == 2 and folder.stderr.strip().endswith("is a directory")
    broken = tmp_path / "broken.c"
    broken.write_text(variant_source(SEED).replace("b->size++;", "b->size++"))
    bad = check_c(str(broken), "--out", str(tmp_path / "o"))
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "broken.c:" in bad.stderr and "error" in bad.stderr
    source = tmp_path / "ok.c"
    source.write_text(variant_source(SEED))
    unknown = check_c(str(source), "--against", "nofix")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    afile = tmp_path / "a-file"
    afile.write_text("x")
    into_file = check_c(str(source), "--out", str(afile), "--examples", "1000")
    assert into_file.returncode == 2, into_file.stdout + into_file.stderr
    assert into_file.stderr.count("\n") == 1 and "not a directory" in into_file.stderr
    assert into_file.stdout == "" and afile.read_text() == "x"


def test_a_divergence_outside_the_assumptions_is_reported_apart(tmp_path: Path) -> None:
    """PFNs at or above 2**52 (outside pfn_below_2_52): the C of the seed and upstream's
    fixed C differ there, and check-c says so apart, never as a divergence."""
    from vmballoon.apps.checkc import Kind, judge, violated_assumptions

    sc = load_scenario(Path(__file__).parent / "scenarios" / "pfn_above_2_52.json")
    assert violated_assumptions(sc) == ["pfn_below_2_52"]
    source = tmp_path / "batch_pfn.c"
    source.write_text(variant_source(Variant(frozenset({"batch_pfn"}))))
    found = judge(binary_for(source=source), sc, SEED)
    assert found and {f.kind for f in found} == {Kind.OUTSIDE}
    assert all(f.assumptions == ["pfn_below_2_52"] for f in found)
    inside = parse_scenario(json.dumps({**sc.to_json(), "pfn_base": 0}))
    assert violated_assumptions(inside) == []


def _corpus_finds_whatever_the_seed(
    tmp_path: Path, line: int, text: str, old: str, new: str, prop: str
) -> None:
    """The FIXED source with ``old`` replaced by ``new`` in its line ``line`` (which reads
    ``text``): check-c's corpus reports the regression ``prop``, with its scenario file,
    and the same corpus findings on two seeds (the corpus phase takes no seed; the
    fuzzer, one example, has no part in it)."""
    from vmballoon.apps.checkc import Kind, Origin
    from vmballoon.apps.checkc import check_c as run

    lines = variant_source(FIXED).splitlines(keepends=True)
    assert lines[line - 1].strip() == text
    lines[line - 1] = lines[line - 1].replace(old, new)
    source = tmp_path / "planted.c"
    source.write_text("".join(lines))
    seen = []
    for seed in (0, 7):
        report = run(source, FIXED, 1, seed, tmp_path / f"out{seed}")
        assert report.complete and report.exit == 1
        corpus = report.of(Kind.REGRESSION, origin=Origin.CORPUS)
        found = [f for f in corpus if prop in f.properties]
        assert found, (seed, report.findings)
        assert found[0].path is not None and found[0].path.exists()
        seen.append([(f.corpus_file, f.properties) for f in corpus])
    assert seen[0] == seen[1]


def test_a_planted_regression_the_corpus_covers_is_found_whatever_the_seed(tmp_path: Path) -> None:
    """The batched unlock takes one page too many off ``b->size`` (fixed source, line 759):
    a branch the shipped corpus takes, so the corpus finds it before the fuzzer starts,
    whatever the seed (a fuzzer of one example rarely reaches it)."""
    text, old = "b->size -= size_per_page;", "size_per_page;"
    _corpus_finds_whatever_the_seed(tmp_path, 759, text, old, "size_per_page + 1;", "accounting")


def test_the_refused_list_off_by_one_is_found_whatever_the_seed(tmp_path: Path) -> None:
    """``n_refused_pages < VMW_BALLOON_MAX_REFUSED`` made ``<=`` in
    vmballoon_lock_batched_page (fixed source, line 678): the C holds 17 refused pages,
    which only the state observed inside the entry point shows (the list is released
    before it returns). The corpus takes that branch, so check-c reports the regression
    ``refused_bounds`` whatever the seed."""
    text = "< VMW_BALLOON_MAX_REFUSED) {"
    _corpus_finds_whatever_the_seed(tmp_path, 678, text, "<", "<=", "refused_bounds")


def test_the_model_and_the_c_word_a_violation_alike() -> None:
    """target_from_host names the value the failed command wrote, from the ghost, so the
    C's checker (which sees the target as the command found it) says what the model says."""
    from vmballoon.apps.ctrace import check_c_trace
    from vmballoon.model.properties import check_trace

    spec = Path(__file__).resolve().parents[1] / "spec"
    for path in (
        spec / "findings" / "seed.target_from_host.scenario.json",
        spec / "examples" / "target_on_success.scenario.json",
    ):
        sc = load_scenario(path)
        model = {v.prop: v.message for v in check_trace(sc, SEED)}
        c = {v.prop: v.message for v in check_c_trace(binary_for(SEED), sc, SEED)}
        assert c["target_from_host"] == model["target_from_host"], path
        assert model["target_from_host"].endswith("was written by a failed command")


def test_the_replay_commands_carry_what_the_build_needs(tmp_path: Path) -> None:
    from vmballoon.apps.checkc import Finding, Kind, replay_commands

    f = Finding(
        Kind.REGRESSION,
        ["no_leak"],
        "m",
        parse_scenario('{"format": "vmballoon-scenario/1", "steps": ["work"]}'),
    )
    cmds = replay_commands(Path("o/x.json"), Path("my patch.c"), FIXED, f, (Path("inc"),))
    assert cmds[0] == (
        "vmballoon replay o/x.json --impl c --source 'my patch.c' --include inc "
        "--variant fixed --check"
    )
    assert cmds[-1] == "vmballoon replay o/x.json --variant fixed --check"


def _check_c_running(
    source: Path, out: Path, *options: str, start_new_session: bool = False
) -> subprocess.Popen[str]:
    """``vmballoon check-c source`` with far more examples than a test waits for (seed 1),
    started and left running: its output piped, read as text."""
    argv = [sys.executable, "-m", "vmballoon", "check-c", str(source), *options]
    return subprocess.Popen(
        [*argv, "--examples", "100000", "--seed", "1", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=start_new_session,
    )


def test_an_interrupted_check_writes_what_it_found_and_says_so(tmp_path: Path) -> None:
    """SIGINT once the corpus has said its first finding: exit 130, one line of its own,
    no traceback; what was found written, report.json not complete, the folder marked
    INCOMPLETE.  (The corpus goes on for seconds after that line and the fuzzer would
    then find the same regression and end the run: the signal is sent the moment the
    line is read, so it lands in the corpus or in the fuzzer, never after the run.)"""
    import signal
    import time

    lines = variant_source(FIXED).splitlines(keepends=True)
    lines[758] = lines[758].replace("size_per_page;", "size_per_page + 1;")
    source = tmp_path / "planted.c"
    source.write_text("".join(lines))
    out = tmp_path / "out"
    proc = _check_c_running(source, out)
    assert proc.stderr is not None
    deadline = time.monotonic() + 600
    said: list[str] = []
    for line in proc.stderr:  # wait for the corpus's first finding
        said.append(line.rstrip("\n"))
        if line.startswith("check-c: corpus: regression") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    said += stderr.strip().splitlines()  # progress lines, then the one line of the interrupt
    assert all(ln.startswith("check-c: ") for ln in said), said
    assert said[-1].startswith("check-c: interrupted:")
    assert "INTERRUPTED" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and report["exit"] == 130
    assert (out / "INCOMPLETE").exists()
    [found] = [f for f in report["corpus"]["found"] if f["kind"] == "regression"]
    assert "accounting" in found["properties"] and Path(found["scenario"]).exists()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc; those ending meanwhile left out)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_ctrl_c_in_the_fuzzer_phase_stops_the_run_with_its_partial_report(tmp_path: Path) -> None:
    """A Ctrl-C at a terminal reaches the whole process group, and the driver processes
    may die of it before the parent's own handler runs.  That order is forced here: the
    SIGINT goes to the driver processes of the fuzzer phase first, then to the group.
    The run still ends as an interrupt (exit 130, no traceback, the report written and
    marked partial), never as a harness failure."""
    import contextlib
    import os
    import signal
    import time

    source = tmp_path / "fixed.c"
    source.write_text(variant_source(FIXED))
    out = tmp_path / "out"
    proc = _check_c_running(source, out, "--against", "fixed", start_new_session=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 600
        said: list[str] = []
        for line in proc.stderr:  # wait for the fuzzer phase
            said.append(line.rstrip("\n"))
            if line.startswith("check-c: fuzzer:") or time.monotonic() > deadline:
                break
        time.sleep(3)  # examples under way, the driver processes running
        killed = 0
        until = time.monotonic() + 1.0  # every driver process of that second, as it starts
        while time.monotonic() < until and proc.poll() is None:
            for pid in _children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
                    killed += 1
            time.sleep(0.02)
        assert killed, said
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)  # an interrupt ends in seconds
    finally:  # a run the signal did not stop must not go on fuzzing after the test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "HarnessError" not in stderr, stderr
    said += stderr.strip().splitlines()
    assert said[-1].startswith("check-c: interrupted:"), said
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and report["exit"] == 130
    assert (out / "INCOMPLETE").exists()


def test_the_corpus_lists_a_guest_too_large_to_observe_at_every_call_as_not_replayed() -> None:
    from vmballoon.apps.checkc import CORPUS_MAX_FRAMES, corpus

    c = corpus()
    assert all(sc.frames <= CORPUS_MAX_FRAMES for _, sc in c.scenarios)
    [big] = [m for m in c.missing if "guest64g_2m_to_48g_and_back.json" in m]
    assert "--impl c --check" in big
    assert len(c.scenarios) >= 50


def test_coverage_says_what_the_corpus_and_the_fuzzer_each_took(tmp_path: Path) -> None:
    """``check-c --coverage``: the corpus alone takes every reachable branch of the seed
    (the reviewed list of unreachable ones is the rest), the fuzzer's share is reported
    apart, and both together add up; report.json holds the same figures."""
    from vmballoon.apps.checkc import REPORT, check_c, coverage_lines
    from vmballoon.core.specdata import seed_source
    from vmballoon.harness.coverage import check_reachable, load_unreachable

    report = check_c(seed_source(), SEED, 2, 1, tmp_path / "out", coverage=True)
    cov = report.coverage
    assert set(cov) == {"corpus", "fuzzer", "together"}
    assert check_reachable(cov["corpus"], load_unreachable("seed")).complete
    assert cov["fuzzer"].branches_hit < cov["corpus"].branches_hit
    assert cov["together"].branches_hit >= cov["corpus"].branches_hit
    doc = json.loads((tmp_path / "out" / REPORT).read_text())
    assert doc["coverage"]["corpus"]["branches_hit"] == cov["corpus"].branches_hit
    lines = coverage_lines(cov)
    assert lines[0].startswith("coverage (corpus): lines ")
    assert any(x.strip().startswith("vmballoon_inflate: lines ") for x in lines)


def test_a_driver_that_does_not_return_ends_the_corpus_at_its_first_timeout(
    tmp_path: Path,
) -> None:
    """A module init that loops would make every scenario of the corpus wait for the
    timeout (51 x 10 s): the corpus stops at the first one and says what it did not
    replay."""
    from vmballoon.apps.checkc import Kind, corpus, run_corpus

    text = variant_source(FIXED)
    init = "\tif (x86_hyper_type != X86_HYPER_VMWARE)\n"
    assert text.count(init) == 1
    source = tmp_path / "hangs.c"
    source.write_text(text.replace(init, "\tfor (;;)\n\t\t;\n" + init))
    binary = binary_for(source=source)
    scenarios = corpus().scenarios
    not_replayed: list[str] = []
    found = list(run_corpus(binary, FIXED, scenarios, not_replayed=not_replayed))
    assert [f.kind for f in found] == [Kind.TIMEOUT]
    assert "module init" in found[0].message
    [line] = not_replayed
    assert line.startswith(f"the {len(scenarios) - 1} scenario(s) after {found[0].corpus_file}")


def test_an_interrupt_python_swallowed_still_stops_the_corpus() -> None:
    """A Ctrl-C that lands in an at-fork callback or a finalizer raises a
    KeyboardInterrupt that Python ignores; the signal was seen (``SIGNALLED``), so the
    corpus stops before its next scenario."""
    import pytest

    from vmballoon.apps.checkc import SIGNALLED, corpus, run_corpus

    SIGNALLED.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(run_corpus(binary_for(FIXED), FIXED, corpus().scenarios))
    finally:
        SIGNALLED.clear()
