"""The book's two small Sphinx extensions in ``_ext/``: duplicate scripts and a quiet kernel."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "_ext"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _App:
    def connect(self, *args, **kwargs):
        pass


def test_both_extensions_are_configured():
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert "dedupe_scripts: _ext" in text
    assert "quiet_kernel: _ext" in text


def test_dedupe_keeps_the_first_of_identical_scripts():
    class Js(str):
        def __new__(cls, name, **attributes):
            js = super().__new__(cls, name)
            js.filename, js.attributes = name, attributes
            return js

    inline = {"body": "const THEBE_JS_URL = 1"}
    scripts = [Js("a.js"), Js(None, **inline), Js("b.js"), Js("", **inline), Js("a.js")]
    context = {"script_files": scripts}
    _load("dedupe_scripts")._dedupe(None, "index", "page.html", context, None)
    assert context["script_files"] == [scripts[0], scripts[1], scripts[2]]


def test_quiet_kernel_is_found_first_for_python3(monkeypatch):
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    monkeypatch.setenv("JUPYTER_PATH", "/elsewhere")
    _load("quiet_kernel").setup(_App())
    assert os.environ["JUPYTER_PATH"].split(os.pathsep) == [str(EXT), "/elsewhere"]
    _load("quiet_kernel").setup(_App())  # a second call adds nothing
    assert os.environ["JUPYTER_PATH"].split(os.pathsep) == [str(EXT), "/elsewhere"]
    spec = kernelspec.KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir) == EXT / "kernels" / "python3"
    assert spec.argv[:3] == ["python", "-m", "ipykernel_launcher"]
    assert "--IPKernelApp.log_level=ERROR" in spec.argv


def test_quiet_kernel_runs_code_and_logs_nothing(monkeypatch, tmp_path):
    """Start the book's kernel as the build does; it runs a cell and its stderr stays empty."""
    manager = pytest.importorskip("jupyter_client.manager")
    monkeypatch.setenv("JUPYTER_PATH", str(EXT))
    km = manager.KernelManager(kernel_name="python3")
    log = (tmp_path / "kernel.log").open("w+")
    km.start_kernel(stderr=log, stdout=log)
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        outputs = []
        kc.execute_interactive("import sys; print(sys.executable)", timeout=60,
                               output_hook=lambda msg: outputs.append(msg["content"]))
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    stdout = "".join(c.get("text", "") for c in outputs)
    assert Path(stdout.strip()).resolve() == Path(sys.executable).resolve()
    log.seek(0)
    printed = log.read()
    log.close()
    assert "WARNING" not in printed and "Traceback" not in printed, printed


def test_kernel_spec_is_valid_json():
    spec = json.loads((EXT / "kernels" / "python3" / "kernel.json").read_text(encoding="utf-8"))
    assert spec["language"] == "python" and "{connection_file}" in spec["argv"]
