"""Camera credentials never leak (issue 22, part 2): the redaction helper on every URL and pipeline form, the
password read from the environment, and whole runs (a stream that cannot be opened, one that works) whose
messages and files are searched for the password."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import pytest
from helpers import cli_runner, write_video
from test_runtime import exported

from rockedge.cli import main
from rockedge.errors import RockedgeError
from rockedge.redact import expand_password, redact

SECRET = "s3cret"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, shown", [
    ("rtsp://admin:s3cret@127.0.0.1:9/stream", "rtsp://admin:***@127.0.0.1:9/stream"),
    ("rtsps://admin:s3cret@cam.local:322/live", "rtsps://admin:***@cam.local:322/live"),
    ("http://admin:s3cret@cam/video.mjpg?x=1", "http://admin:***@cam/video.mjpg?x=1"),
    ("https://admin:s3cret@cam", "https://admin:***@cam"),
    ("file://admin:s3cret@/abs/path.mp4", "file://admin:***@/abs/path.mp4"),
    ("rtmp://u:s3cret@h:1935/app", "rtmp://u:***@h:1935/app"),
    ("RTSP://Admin:s3cret@CAM/x", "RTSP://Admin:***@CAM/x"),
    ("rtsp://s3cret@cam/x", "rtsp://***@cam/x"),  # a user with no password may be a token: hidden whole
    ("rtsp://admin:@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://admin:p@s3cret@cam/x", "rtsp://admin:***@cam/x"),  # '@' in the password: the last '@' counts
    ("rtsp://admin:s3?cr#et@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://admin:s3cret%2F%40@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://admin:$ROCKEDGE_RTSP_PASSWORD@cam/x", "rtsp://admin:***@cam/x"),
    ("cannot open stream rtsp://a:s3cret@h/1: unreachable, and http://b:s3cret@h/2",
     "cannot open stream rtsp://a:***@h/1: unreachable, and http://b:***@h/2"),
    ("rtspsrc location=rtsp://admin:s3cret@cam/s latency=0 ! rtph264depay ! appsink",
     "rtspsrc location=rtsp://admin:***@cam/s latency=0 ! rtph264depay ! appsink"),
    ("rtspsrc location=\"rtsp://admin:s3cret@cam/s\" ! appsink", "rtspsrc location=\"rtsp://admin:***@cam/s\" ! appsink"),
    ("rtspsrc location=rtsp://cam/s user-id=admin user-pw=s3cret ! appsink",
     "rtspsrc location=rtsp://cam/s user-id=*** user-pw=*** ! appsink"),
    ("rtspsrc user-pw=\"s3 cret\" user-id='ad min' ! appsink", "rtspsrc user-pw=*** user-id=*** ! appsink"),
    ("souphttpsrc location=http://cam/x user-pw = s3cret!jpegdec", "souphttpsrc location=http://cam/x user-pw = ***!jpegdec"),
    ("rtspsrc proxy-id=p proxy-pw=s3cret ! appsink", "rtspsrc proxy-id=*** proxy-pw=*** ! appsink"),
    ("'cannot open GStreamer pipeline \\'rtspsrc user-pw=s3cret ! appsink\\''",
     "'cannot open GStreamer pipeline \\'rtspsrc user-pw=*** ! appsink\\''"),
])
def test_redact_hides_every_password(text, shown):
    assert redact(text) == shown
    assert SECRET not in redact(text)
    assert redact(redact(text)) == redact(text)


@pytest.mark.parametrize("text", [
    "rtsp://cam.local:554/stream", "http://cam/x?user=admin", "/data/rocks@site/a.mp4", "clip.mp4", "0",
    "git@github.com:x/y", "mailto:a@b.c", "v4l2src device=/dev/video0 ! videoconvert ! appsink", "frames/*.png",
    "tcp://127.0.0.1:9?timeout=0 failed: Connection refused", "",
])
def test_redact_leaves_the_rest_alone(text):
    assert redact(text) == text


def test_the_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CAM_PW", "p@ss/w:rd ü")
    assert expand_password("rtsp://admin:$CAM_PW@cam/x") == "rtsp://admin:p%40ss%2Fw%3Ard%20%C3%BC@cam/x"
    assert expand_password("rtsp://admin:${CAM_PW}@cam/x") == "rtsp://admin:p%40ss%2Fw%3Ard%20%C3%BC@cam/x"
    pipeline = "rtspsrc location=rtsp://admin:$CAM_PW@cam/s ! appsink"
    assert expand_password(pipeline) == "rtspsrc location=rtsp://admin:p%40ss%2Fw%3Ard%20%C3%BC@cam/s ! appsink"
    for literal in ("rtsp://admin:a$CAM_PW@cam/x", "rtsp://admin:s3cret@cam/x", "rtsp://cam/$CAM_PW",
                    "rtsp://$CAM_PW@cam/x", "rtsp://admin:${CAM_PW@cam/x"):
        assert expand_password(literal) == literal  # only a password that is exactly $NAME or ${NAME}


def test_a_missing_variable_is_one_line_naming_it(monkeypatch):
    monkeypatch.delenv("ROCKEDGE_RTSP_PASSWORD", raising=False)
    with pytest.raises(RockedgeError) as e:
        expand_password("rtsp://admin:$ROCKEDGE_RTSP_PASSWORD@cam/x")
    assert str(e.value) == ("the source's password is $ROCKEDGE_RTSP_PASSWORD, but ROCKEDGE_RTSP_PASSWORD is not set "
                            "in the environment; export ROCKEDGE_RTSP_PASSWORD=... before the run, or give the "
                            "password in the URL")


# -- whole runs ----------------------------------------------------------------------------------------------------


@pytest.fixture
def model(trained_ckpt, tmp_path_factory) -> Path:
    return exported("float", trained_ckpt, tmp_path_factory)


@pytest.fixture
def video(scenes, tmp_path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    return write_video(d / "in.mp4", [cv2.resize(s[0], (64, 48)) for s in scenes(6, 64, 64, seed=4)], fps=10.0)


def no_secret_anywhere(folder: Path, *texts: str) -> list[Path]:
    """Every file under ``folder`` (and every text) is free of the password; returns the files searched."""
    for t in texts:
        assert SECRET not in t, t
    files = [f for f in folder.rglob("*") if f.is_file()]
    for f in files:
        assert SECRET.encode() not in f.read_bytes(), f"{f} holds the password"
        assert SECRET not in f.name
    return files


def rockedge_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real process: what OpenCV or FFmpeg write to fd 2 is in its stderr too."""
    return subprocess.run([sys.executable, "-m", "rockedge", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_a_stream_that_cannot_open_never_shows_the_password(model, tmp_path):
    out = tmp_path / "out"
    p = rockedge_process("run", str(model), f"rtsp://admin:{SECRET}@127.0.0.1:9/stream", "--out", str(out / "o.mp4"),
                         "--json", str(tmp_path / "s.json"), "-q")
    assert p.returncode == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open stream rtsp://admin:***@127.0.0.1:9/stream"), \
        p.stderr
    no_secret_anywhere(tmp_path, p.stdout, p.stderr)
    # --debug shows the traceback: the message in it is the redacted one.
    p = rockedge_process("--debug", "run", str(model), f"rtsp://admin:{SECRET}@127.0.0.1:9/stream", "-q")
    assert p.returncode == 1 and "rtsp://admin:***@" in p.stderr
    no_secret_anywhere(tmp_path, p.stdout, p.stderr)


def test_a_missing_password_variable_is_one_line(model, tmp_path):
    p = rockedge_process("run", str(model), "rtsp://admin:${ROCKEDGE_RTSP_PASSWORD}@127.0.0.1:9/stream", "-q",
                         "--out", str(tmp_path / "o.mp4"), env={"ROCKEDGE_RTSP_PASSWORD": ""})
    assert p.returncode == 1, p.stderr  # set but empty is set: the stream is tried (and cannot be opened)
    assert "cannot open stream rtsp://admin:***@127.0.0.1:9/stream" in p.stderr
    env = {k: v for k, v in os.environ.items() if k != "ROCKEDGE_RTSP_PASSWORD"}
    p = subprocess.run([sys.executable, "-m", "rockedge", "run", str(model),
                        "rtsp://admin:$ROCKEDGE_RTSP_PASSWORD@127.0.0.1:9/stream", "-q"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert lines[0].startswith("error: the source's password is $ROCKEDGE_RTSP_PASSWORD, but ROCKEDGE_RTSP_PASSWORD "
                               "is not set in the environment"), lines[0]


class _CameraHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the media folder to a client that gives Basic credentials admin:s3cret, like an IP camera."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen.append(auth)
        if auth != "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def camera(video):
    """An HTTP 'camera' serving ``video`` behind Basic auth; yields its URL without credentials."""
    _CameraHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CameraHandler,
                                                                                 directory=str(video.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/{video.name}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("how", ["inline", "environment"])
def test_a_stream_with_credentials_runs_and_its_files_never_hold_the_password(model, camera, tmp_path, monkeypatch,
                                                                              how):
    if how == "environment":
        monkeypatch.setenv("CAM_PASSWORD", SECRET)
        url = f"http://admin:${{CAM_PASSWORD}}@{camera}"
    else:
        url = f"http://admin:{SECRET}@{camera}"
    out = tmp_path / "out"
    r = cli_runner().invoke(main, ["run", str(model), url, "--out", str(out / "cam.mp4"), "--json", "-"],
                            catch_exceptions=False)
    assert any(a and a.startswith("Basic ") for a in _CameraHandler.seen), "the password never reached the camera"
    # The stream ends after the file's frames: a live source that stops is a broken run, with its output kept.
    assert r.exit_code in (0, 1), r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames"] > 0 and summary["source"]["source"] == f"http://admin:***@{camera}"
    files = no_secret_anywhere(tmp_path, r.stdout, r.stderr)
    assert {f.name for f in files} >= {"cam.mp4", "cam.jsonl", "cam.summary.json"}
    assert json.loads((out / "cam.summary.json").read_text())["source"]["source"] == f"http://admin:***@{camera}"
    if r.exit_code == 1:
        assert "admin:***@" in r.stderr


def test_a_file_url_with_credentials_runs_and_leaves_no_password(model, video, tmp_path):
    out = tmp_path / "out"
    url = f"file://admin:{SECRET}@{video.resolve()}"
    r = cli_runner().invoke(main, ["run", str(model), url, "--out", str(out), "--save-mask", "--json",
                                   str(tmp_path / "summary.json")], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["source"]["kind"] == "video"  # a file:// URL is the file it names
    files = no_secret_anywhere(tmp_path, r.stdout, r.stderr)
    assert len([f for f in files if f.suffix == ".jsonl"]) == 1 and len(files) >= 5
    jsonl = [json.loads(ln) for f in files if f.suffix == ".jsonl" for ln in f.read_text().splitlines()]
    assert len(jsonl) == 6


def test_a_file_url_on_another_host_is_refused_without_its_password(model, video, tmp_path):
    r = cli_runner().invoke(main, ["run", str(model), f"file://admin:{SECRET}@nas{video.resolve()}", "-q",
                                   "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert r.exit_code == 1 and "file://admin:***@nas" in r.stderr and SECRET not in r.stderr


def test_reports_and_warnings_hide_passwords(tmp_path, capsys):
    from rockedge.atomic import to_json, write_json
    from rockedge.console import warn
    from rockedge.runtime.sources import IterableSource

    write_json(tmp_path / "r.json", {"source": f"rtsp://admin:{SECRET}@cam/x", "n": [f"user-pw={SECRET}"]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"source": "rtsp://admin:***@cam/x", "n": ["user-pw=***"]}
    assert SECRET not in to_json({"a": (f"http://u:{SECRET}@h",)})
    warn(f"lost rtsp://admin:{SECRET}@cam/x")
    assert capsys.readouterr().err == "warning: lost rtsp://admin:***@cam/x\n"
    src = IterableSource([], label=f"rtsp://admin:{SECRET}@cam/x")
    assert src.describe()["source"] == "rtsp://admin:***@cam/x"
