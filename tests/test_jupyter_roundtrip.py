"""JupyterLab keeps the course's files intact: a real Jupyter server, its contents API, jupytext.

A learner double-clicks a chapter (book/*.md) or an exercise (exercises/*.py) and JupyterLab opens it
as a notebook through jupytext's contents manager; saving writes the text back. Here a JupyterLab
server runs on 127.0.0.1 with a token, over a copy of the course's files (a failing save must not
touch the repository), and each file is read as a notebook and saved back through the same HTTP API
the browser uses:

- an unedited save leaves every chapter, exercise and solution byte-identical (the front matter's
  `course:` block, which the course card and the notebook budgets read, included);
- an edit to one cell changes that cell and nothing else;
- README.md and the package's .py files are not notebooks (jupytext.toml), so a save from a
  notebook view can never rewrite them;
- JupyterLab reads the course's settings (jupyter_config/overrides.json, put in place by
  tools/setup_course.py): .md and .py open with the "Jupytext Notebook" viewer.

Offline and bounded: loopback only, the server is stopped at the end, every request has a timeout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from setup_course import install_lab_settings  # noqa: E402

CHAPTERS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "book").glob("*.md"))
EXERCISES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "exercises").glob("ch[0-9][0-9]_*.py"))
SOLUTIONS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "solutions").glob("ch[0-9][0-9]_*.py"))
NOT_NOTEBOOKS = ["README.md", "companion/io.py"]
TOKEN = "course-roundtrip-test"
START_TIMEOUT_S = 90


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must run the JupyterLab round trip: make venv installs the test extra)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int, root: Path):
        self.base, self.root = f"http://127.0.0.1:{port}", root

    def request(self, method: str, path: str, body: dict | None = None, **query) -> tuple[int, dict]:
        url = f"{self.base}{path}?{urllib.parse.urlencode(query)}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def get_notebook(self, path: str) -> dict:
        status, model = self.request("GET", f"/api/contents/{path}", type="notebook", content=1)
        assert status == 200, f"GET {path} as a notebook: HTTP {status}: {model.get('message')}"
        assert model["type"] == "notebook" and model["content"]["cells"], f"{path} did not open as a notebook"
        return model["content"]

    def save_notebook(self, path: str, content: dict) -> None:
        status, model = self.request("PUT", f"/api/contents/{path}", {"type": "notebook", "format": "json", "content": content})
        assert status == 200, f"PUT {path}: HTTP {status}: {model.get('message')}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    for module in ("jupyterlab", "jupyter_server", "jupytext"):
        if importlib.util.find_spec(module) is None:
            _missing(f"{module} is not installed: pip install -e \".[test]\" (or make venv)")
    work = tmp_path_factory.mktemp("jupyter")
    root, home, prefix = work / "course", work / "home", work / "prefix"
    for rel in [*CHAPTERS, *EXERCISES, *SOLUTIONS, *NOT_NOTEBOOKS, "jupytext.toml",
                "book/jupytext.toml", "exercises/jupytext.toml", "solutions/jupytext.toml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, root / rel)
    settings = install_lab_settings(prefix).parent  # what tools/setup_course.py writes into the venv
    home.mkdir()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_PLATFORM_DIRS": "1", "HOME": str(home)}
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
           f"--LabApp.app_settings_dir={settings}", f"--LabApp.user_settings_dir={home / 'user-settings'}",
           f"--LabApp.workspaces_dir={home / 'workspaces'}"]
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    srv = Server(port, root)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Jupyter server exited ({proc.returncode}):\n{(work / 'server.log').read_text()[-3000:]}")
            try:
                if srv.request("GET", "/api/status")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the Jupyter server did not answer within {START_TIMEOUT_S} s:\n"
                            f"{(work / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def test_the_server_refuses_a_request_without_the_token(server):
    req = urllib.request.Request(f"{server.base}/api/contents/README.md")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 403


@pytest.mark.parametrize("path", CHAPTERS + EXERCISES + SOLUTIONS)
def test_an_unedited_save_leaves_the_file_byte_identical(server, path):
    before = (server.root / path).read_bytes()
    content = server.get_notebook(path)
    if path.endswith(".md") and b"\ncourse:\n" in before:
        assert "course" in content["metadata"], f"{path}: the front matter's course block was not read"
    server.save_notebook(path, content)
    after = (server.root / path).read_bytes()
    if after != before:
        import difflib

        diff = "\n".join(list(difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(),
                                                   "on disk", "saved from Jupyter", lineterm="", n=1))[:40])
        pytest.fail(f"saving {path} from JupyterLab without an edit changed it. If the front matter only moved, "
                    f"write it as jupytext does (keys sorted, lists in [flow, style]): open and save the "
                    f"file in JupyterLab once. If a front-matter key disappeared, add it to "
                    f"notebook_metadata_filter in {path.split('/')[0]}/jupytext.toml.\n{diff}")


def _edit_one_cell(server, path: str, cell_type: str) -> None:
    before = (server.root / path).read_text(encoding="utf-8")
    content = server.get_notebook(path)
    # the first cell of that type whose text appears once in the file, so the expected file is exact
    index = next(i for i, c in enumerate(content["cells"])
                 if c["cell_type"] == cell_type and len(c["source"]) > 20 and before.count(c["source"]) == 1)
    source = content["cells"][index]["source"]
    added = "x_edited = 1  # edited in JupyterLab" if cell_type == "code" else "An edit made in JupyterLab."
    content["cells"][index]["source"] = source + "\n" + added
    server.save_notebook(path, content)
    after = (server.root / path).read_text(encoding="utf-8")
    assert after == before.replace(source, source + "\n" + added, 1), (
        f"editing cell {index} of {path} changed more than that cell")
    again = server.get_notebook(path)
    assert again["cells"][index]["source"] == source + "\n" + added
    assert len(again["cells"]) == len(content["cells"])


def test_an_edit_to_a_chapter_cell_changes_only_that_cell(server):
    _edit_one_cell(server, "book/04_norms.md", "markdown")
    _edit_one_cell(server, "book/03_attention.md", "code")


def test_an_edit_to_an_exercise_cell_changes_only_that_cell(server):
    _edit_one_cell(server, "exercises/ch03_attention.py", "code")
    _edit_one_cell(server, "exercises/ch04_norms.py", "code")


@pytest.mark.parametrize("path", NOT_NOTEBOOKS)
def test_files_that_are_not_notebooks_cannot_be_saved_as_notebooks(server, path):
    before = (server.root / path).read_bytes()
    status, model = server.request("GET", f"/api/contents/{path}", type="notebook", content=1)
    assert status == 400, f"{path} opened as a notebook (HTTP {status}): a save would rewrite it as one"
    status, model = server.request("GET", f"/api/contents/{path}", type="file", content=1)
    assert status == 200 and model["content"] == before.decode()
    assert (server.root / path).read_bytes() == before


def test_jupyterlab_opens_md_and_py_as_notebooks_by_default(server):
    status, plugin = server.request("GET", "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert status == 200, plugin
    viewers = plugin["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("markdown") == "Jupytext Notebook" and viewers.get("python") == "Jupytext Notebook", viewers


def test_the_viewer_named_in_the_settings_is_one_jupytext_registers():
    spec = importlib.util.find_spec("jupytext")
    if spec is None:
        _missing("jupytext is not installed: pip install -e \".[test]\"")
    viewers = set(json.loads((ROOT / "jupyter_config" / "overrides.json").read_text())
                  ["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"].values())
    bundles = [Path(p) for p in (sys.prefix, sys.base_prefix)]
    found = [js for base in bundles for js in (base / "share/jupyter/labextensions/jupyterlab-jupytext/static").glob("*.js")]
    if not found:
        _missing("jupytext's JupyterLab extension is not installed in this environment")
    text = "".join(js.read_text(encoding="utf-8", errors="replace") for js in found)
    for viewer in viewers:
        assert f'"{viewer}"' in text or f"'{viewer}'" in text, f"no JupyterLab viewer called {viewer!r} in jupytext's extension"
