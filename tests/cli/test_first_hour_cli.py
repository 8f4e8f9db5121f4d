"""Issue 26, the command line as a new user meets it: quiet output, fast one-line refusals, names as stored,
progress in logs, and Ctrl-C that says what is left. Everything goes through the `rns` entry point."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import two_texture_image

REPO = Path(__file__).resolve().parents[2]


def photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(two_texture_image(seed)).save(path)
    return path


def half_mask(path: Path) -> Path:
    Image.fromarray((np.arange(160)[None, :].repeat(120, 0) < 80).astype(np.uint8)).save(path)
    return path


# A fresh interpreter runs each refusal and reports its exit code, its stderr and whether torch was imported.
_PROBE = """
import contextlib, io, json, sys
from rns.cli import cli
from rns.cli.errors import run_with_user_errors
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_with_user_errors(cli, argv)
    results.append({"code": code, "err": err.getvalue(), "torch": "torch" in sys.modules})
print(json.dumps(results))
"""


def test_bad_values_are_refused_in_one_line_before_torch_is_imported(tmp_path):
    """Item 8 (and 9's refusals): nothing heavy is imported before a bad value is refused."""
    image = photo(tmp_path / "a.png")
    cases = {
        "unknown output 'label' in --save": ["segment", str(image), "--save", "label"],
        "--export 'cocoo'": ["segment", str(image), "--export", "cocoo"],
        "does not exist": ["segment", str(tmp_path / "gone.jpg")],
        'write --classes "car,road"': ["segment", str(image), "--classes", "car;road"],
        "image " + str(tmp_path / "gone.jpg") + " does not exist": [
            "add-support", str(tmp_path / "gone.jpg"), str(image), "--class", "car"],
        "value 300 cannot be in an 8-bit mask": [
            "add-support", str(image), str(image), "--labels", "0=a,300=x"],
        "no such option --clases (did you mean --classes?)": ["segment", str(image), "--clases", "car"],
    }
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(cases.values()))], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    for expected, result in zip(cases, json.loads(done.stdout), strict=True):
        lines = result["err"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1 and expected in lines[0], result
        assert not result["torch"], f"torch was imported before refusing: {lines}"


def test_usage_errors_are_one_line_with_no_misleading_suggestion(capsys):
    code, _, err = rns(["segment", "x.jpg", "--clases", "car"], capsys)
    assert code == 2
    assert err.strip() == ("rns segment: error: no such option --clases (did you mean --classes?); "
                           "see 'rns segment --help'")
    assert "--steps" not in err
    code, _, err = rns(["segment", "x.jpg", "--k", "0"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--k" in err and "Usage" not in err


def test_quiet_prints_only_the_final_line(tmp_path, capsys):
    """Item 5: -q promises the final line, for a folder and for one photo."""
    folder = tmp_path / "in"
    photo(folder / "a.png")
    photo(folder / "b.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".rns.lock").write_text("999999999")  # left by a run killed long ago: its pid is gone
    code, stdout, err = rns(["segment", str(folder), "--classes", "car", "--zero-shot", "--out", str(out),
                             "-q", *TINY], capsys)
    assert code == 0, err
    assert stdout == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("2 segmented, 0 already done, 0 failed") and str(out) in line
    assert not (out / ".rns.lock").exists()  # item 13: no hidden lock file stays behind
    code, _, err = rns(["segment", str(folder / "a.png"), "--classes", "car", "--zero-shot", "--out",
                        str(tmp_path / "one"), "-q", *TINY], capsys)
    (line,) = err.strip().splitlines()
    assert code == 0 and line.startswith("a.png: ") and "car" in line and str(tmp_path / "one") in line


def test_add_support_prints_the_name_the_memory_keeps_and_progress_lines_in_a_log(tmp_path, capsys):
    """Items 9 and 11: "Sky" joins "sky" and is reported as "sky"; piped output gets a line per image."""
    memory = tmp_path / "memory.zarr"
    mask = half_mask(tmp_path / "m.png")
    first, second, third = (photo(tmp_path / f"{n}.png", seed=n) for n in range(3))
    code, out, err = rns(["add-support", str(first), str(mask), "--class", "sky", "--memory", str(memory),
                          *TINY], capsys)
    assert code == 0, err
    code, out, err = rns(["add-support", str(second), str(mask), str(third), str(mask), "--class", "Sky",
                          "--memory", str(memory), *TINY], capsys)
    assert code == 0, err
    assert "Sky" not in out and "classes: sky" in out and "(sky)" in out
    progress = [line for line in err.splitlines() if line.startswith("extracting")]
    assert progress == ["extracting 1/2", "extracting 2/2"]  # stderr here is not a terminal


def test_the_output_lock_refuses_a_second_holder_and_leaves_no_file(tmp_path):
    from rns.run.outlock import OutputFolderBusyError, output_folder_lock

    with output_folder_lock(tmp_path):
        assert (tmp_path / ".rns.lock").read_text() == str(os.getpid())
        with pytest.raises(OutputFolderBusyError, match="in use by another rns run"), \
                output_folder_lock(tmp_path):
            pass
    assert not (tmp_path / ".rns.lock").exists()
    with output_folder_lock(tmp_path):  # and it can be taken again
        pass


def test_ctrl_c_says_how_many_images_are_left_and_that_a_rerun_resumes(tmp_path):
    """Item 10. Ctrl-C comes once the first of many photos is written, so the run is mid-way.

    (A named pipe among the inputs used to hold the run; folder runs now refuse special files instead.)
    """
    count = 40
    for index in range(count):
        photo(tmp_path / "in" / f"p{index:02d}.png")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = ["segment", str(tmp_path / "in"), "--classes", "car", "--zero-shot", "--out", str(out), "-q",
            *TINY]
    code = "import sys; from rns.cli import main; main(sys.argv[1:])"
    process = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*.labels.png")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
    finally:
        _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    left = re.search(rf"interrupted: (\d+) of {count} image\(s\) left; the same command again resumes", err)
    assert left and 1 <= int(left.group(1)) < count, err
    assert "Traceback" not in err and "Exception ignored" not in err


def test_ctrl_c_after_the_work_is_done_exits_130_without_a_traceback():
    """Item 10: Ctrl-C while Python joins leftover threads at exit (as after add-support) ends at once."""
    probe = ("import threading, time\n"
             "threading.Thread(target=time.sleep, args=(60,)).start()  # a pool still being joined at exit\n"
             "from rns.cli import main\nprint('ready', flush=True)\nmain(['--version'])\n")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen([sys.executable, "-c", probe], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # main has returned and the interpreter waits for the thread
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.strip() == "rns: interrupted while shutting down (the command had finished its work)"


def test_a_rerun_after_saving_more_outputs_redoes_nothing(tmp_path, capsys):
    """Item 6: outputs saved by an earlier `--save all` run do not make a plain rerun redo the images."""
    folder = tmp_path / "in"
    photo(folder / "a.png")
    photo(folder / "b.png", seed=1)
    out = tmp_path / "out"
    base = ["segment", str(folder), "--classes", "car", "--zero-shot", "--out", str(out), "-q", *TINY]
    code, _, err = rns([*base, "--save", "all"], capsys)
    assert code == 0 and "2 segmented" in err, err
    code, _, err = rns(base, capsys)
    assert code == 0 and err.startswith("0 segmented, 2 already done"), err
    code, _, err = rns([*base, "--save", "labels,probs"], capsys)  # the probs are there too
    assert code == 0 and err.startswith("0 segmented, 2 already done"), err


def test_a_rerun_with_nothing_to_do_loads_no_model(tmp_path, capsys):
    """Item 7: what is done is decided before the model loads; the rerun imports no torch, shows no 0/0."""
    folder = tmp_path / "in"
    photo(folder / "a.png")
    photo(folder / "b.png", seed=1)
    out = tmp_path / "out"
    argv = ["segment", str(folder), "--classes", "car", "--zero-shot", "--out", str(out), *TINY]
    code, _, err = rns(argv, capsys)
    assert code == 0, err
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    probe = ("import json, sys\nfrom rns.cli.errors import run_with_user_errors\nfrom rns.cli import cli\n"
             "code = run_with_user_errors(cli, json.loads(sys.argv[1]))\n"
             "print(json.dumps([code, 'torch' in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(argv)], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == [0, False], done.stderr
    assert done.stderr.strip() == f"0 segmented, 2 already done, 0 failed in 0.0 s; outputs in {out}"
    assert json.loads((out / "summary.json").read_text())["counts"]["skipped"] == 2
    # a changed setting is not taken for done: it builds the model and redoes both
    code, _, err = rns([*argv, "--classes", "car,road", "-q"], capsys)
    assert code == 0 and err.startswith("2 segmented"), err
