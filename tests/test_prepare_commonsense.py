"""prepare_data.py commonsense against a local HTTP server on 127.0.0.1 (Range-capable) serving fixtures."""
from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from randlora.data.prepare import command
from randlora.data.prepare import commonsense as cs
from randlora.data.prepare.download import DownloadError, Expected, fetch, git_blob_id


class RangeHandler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut: dict[str, int] = {}  # path -> bytes actually sent (simulates a connection dropped mid-file)

    def do_GET(self):  # noqa: N802
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.cut.pop(self.path, len(body))])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    RangeHandler.files, RangeHandler.cut = {}, {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", RangeHandler
    httpd.shutdown()


def _records(n: int) -> bytes:
    return json.dumps([{"instruction": f"q{i}", "input": "", "output": "the correct answer is true",
                        "answer": "true"} for i in range(n)], indent=2).encode()


def _pin(monkeypatch, handler, data: dict[str, bytes], records: dict[str, int | None]) -> None:
    files = {}
    for target, content in data.items():
        source = f"dataset/{target}" if target.endswith("test.json") else f"ft-training_set/{target}"
        files[target] = cs.PinnedFile(source, target, git_blob_id(content), len(content),
                                      hashlib.sha256(content).hexdigest(), records[target])
        handler.files[f"/{source}"] = content
    monkeypatch.setattr(cs, "FILES", files)


def test_download_verifies_records_and_checksums(server, tmp_path, monkeypatch):
    url, handler = server
    data = {"commonsense_15k.json": _records(5), "boolq/test.json": _records(3)}
    _pin(monkeypatch, handler, data, {"commonsense_15k.json": None, "boolq/test.json": 3})
    assert command.main(["commonsense", "--root", str(tmp_path), "--base-url", url]) == 0
    assert (tmp_path / "boolq" / "test.json").read_bytes() == data["boolq/test.json"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"]["commonsense_15k.json"]["records"] == 5
    assert manifest["files"]["boolq/test.json"]["sha256"] == hashlib.sha256(data["boolq/test.json"]).hexdigest()
    assert command.main(["commonsense", "--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "boolq" / "test.json").write_bytes(_records(2))
    assert command.main(["commonsense", "--root", str(tmp_path), "--check"]) == 1


def test_truncated_file_is_refused_and_nothing_is_left(server, tmp_path, monkeypatch, capsys):
    url, handler = server
    content = _records(4)
    _pin(monkeypatch, handler, {"piqa/test.json": content}, {"piqa/test.json": 4})
    handler.files["/dataset/piqa/test.json"] = content[:-40]  # the server has a truncated copy
    assert command.main(["commonsense", "--root", str(tmp_path), "--base-url", url]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "truncated" in err
    assert not (tmp_path / "piqa").exists()


def test_interrupted_download_resumes_from_the_part_file(server, tmp_path):
    url, handler = server
    content = _records(50)
    handler.files["/f.json"] = content
    handler.cut["/f.json"] = 100  # the first response stops after 100 bytes
    expected = Expected(len(content), hashlib.sha256(content).hexdigest())
    with pytest.raises(DownloadError, match="kept: run again to resume"):
        fetch(f"{url}/f.json", tmp_path / "f.json", expected)
    part = tmp_path / "f.json.part"
    assert part.read_bytes() == content[:100] and not (tmp_path / "f.json").exists()
    assert fetch(f"{url}/f.json", tmp_path / "f.json", expected).read_bytes() == content
    assert not part.exists()


def test_no_network_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cs, "FILES", {"boolq/test.json": cs.FILES["boolq/test.json"]})
    code = command.main(["commonsense", "--root", str(tmp_path / "r"), "--base-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("commonsense: could not download http://127.0.0.1:9/")
    assert not (tmp_path / "r").exists()


def test_pins_match_the_shared_copy_of_the_pinned_commit():
    """The 7 test files shipped in /work/shared came from the pinned commit: they must verify."""
    shared = Path("/work/shared/data/commonsense")
    if not shared.is_dir():
        pytest.skip("no shared copy on this machine")
    from randlora.data.prepare.download import verify

    for pinned in cs.FILES.values():
        local = shared / pinned.target.replace("/test.json", ".test.json")
        if local.is_file():
            assert verify(local, pinned.expected) is None, pinned.target
            assert cs.count_records(local) == pinned.records
