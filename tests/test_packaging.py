"""What a new user meets first: the install commands, the console scripts and their help."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one_verbatim():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    install_and_run, test = commands
    assert "pip install ." in install_and_run and "libusb-1.0-0" in install_and_run
    assert "realtime " in install_and_run
    assert '".[test]"' in test and "pytest" in test
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_opencv_comes_only_as_the_contrib_wheel():
    """opencv-python and opencv-contrib-python both install the ``cv2`` module; with both listed,
    whichever pip installs last overwrites the other."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    opencv = [d for d in deps if d.startswith("opencv")]
    assert len(opencv) == 1 and opencv[0].startswith("opencv-contrib-python"), opencv


@pytest.mark.slow
@pytest.mark.parametrize(
    "tool,subcommands",
    [("realtime", ["doctor", "run", "view", "demo"]), ("training", ["prepare", "train", "evaluate"]),
     ("engines", ["skeleton", "build", "info", "verify"])],
)
def test_console_scripts_have_useful_help(tool, subcommands):
    exe = shutil.which(tool)
    cmd = [exe] if exe else [sys.executable, "-m", f"{tool}.cli"]
    res = subprocess.run([*cmd, "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for sub in subcommands:
        assert sub in res.stdout


@pytest.mark.slow
def test_engines_skeleton_json_is_the_contract():
    import json

    from engines.skeleton import CANONICAL

    res = subprocess.run([sys.executable, "-m", "engines.cli", "skeleton", "--json"], capture_output=True, text=True)
    doc = json.loads(res.stdout)
    assert doc["joints"] == list(CANONICAL.joint_names) and doc["parents"] == list(CANONICAL.parents)


@pytest.mark.slow
def test_doctor_runs_end_to_end_on_a_real_video(shared_dir):
    video = shared_dir / "media" / "pose2sim-demo" / "cam04.mp4"
    res = subprocess.run([sys.executable, "-m", "realtime.cli", "doctor", "--video", str(video), "--frames", "5"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "5 frames read, a person in 5" in res.stdout
    assert "right_wrist" in res.stdout


@pytest.mark.slow
def test_doctor_missing_camera_is_one_sentence():
    res = subprocess.run([sys.executable, "-m", "realtime.cli", "doctor", "--camera", "97"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: could not open camera 97")
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_doctor_corrupt_video(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    res = subprocess.run([sys.executable, "-m", "realtime.cli", "doctor", "--video", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "broken.mp4" in res.stderr and "Traceback" not in res.stderr
