"""Where a published file comes from (named file, mirror, cache, download), and that only the
published bytes are ever used: a download is tested against a server on loopback."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotag.digests import sha256
from autotag.pretrained import fetch
from autotag.pretrained.catalogue import published
from autotag.pretrained.fetch import FetchError, download, locate


@pytest.fixture
def server(published_weights: Path) -> Iterator[str]:
    """An HTTP server on loopback serving the weights folder; its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(published_weights))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_download_arrives_whole_with_its_progress(server: str, tmp_path: Path) -> None:
    entry, seen = published("mtat-fcn"), []
    file = download(
        f"{server}/{entry.file}", tmp_path / "cache" / entry.file, entry.size, lambda d, t: seen.append((d, t))
    )
    assert fetch.checked(entry, file) == file
    assert seen[-1] == (entry.size, entry.size) and len(seen) > 10
    assert [p.name for p in file.parent.iterdir()] == [entry.file]  # no temporary file left


def test_a_download_of_another_file_is_never_used(server: str, tmp_path: Path) -> None:
    entry = published("mtat-fcn")
    file = download(f"{server}/msd_fcn.pth", tmp_path / entry.file, entry.size)
    with pytest.raises(FetchError, match="is not the published mtat-fcn: its sha256 is"):
        fetch.checked(entry, file)


def test_a_server_that_sends_too_much_is_cut_off(server: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="sends more than twice"):
        download(f"{server}/mtat_musicnn.pth", tmp_path / "x.pth", size=1000)
    assert not list(tmp_path.iterdir())


def test_offline_a_download_fails_at_once_and_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mtat_fcn.pth"
    start = time.monotonic()
    with pytest.raises(FetchError) as refused:
        download(url, tmp_path / "mtat_fcn.pth", 10)
    assert time.monotonic() - start < 5
    message = str(refused.value)
    assert url in message and "--from FILE" in message and "AUTOTAG_PRETRAINED_DIR" in message
    assert not list(tmp_path.iterdir())


def test_the_sources_in_order_named_file_mirror_cache(
    published_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = published("mtat-fcn")
    downloads = []

    def fake_download(url: str, dest: Path, size: int, progress: object = None) -> Path:
        downloads.append(url)
        return Path(shutil.copy(published_weights / entry.file, dest))

    monkeypatch.setattr(fetch, "download", fake_download)
    assert locate(entry, published_weights / entry.file) == published_weights / entry.file
    monkeypatch.setenv(fetch.MIRROR_ENV, str(published_weights))
    assert locate(entry) == published_weights / entry.file
    monkeypatch.setenv(fetch.MIRROR_ENV, str(tmp_path / "empty-mirror"))
    with pytest.raises(FetchError, match="is not in AUTOTAG_PRETRAINED_DIR"):
        locate(entry)
    monkeypatch.delenv(fetch.MIRROR_ENV)
    cached = fetch.cache_dir() / entry.file
    cached.parent.mkdir(parents=True)
    shutil.copy(published_weights / entry.file, cached)
    assert locate(entry) == cached and downloads == []
    cached.write_bytes(b"half a download")  # damaged: fetched again
    assert locate(entry) == cached and downloads == [entry.url]
    assert sha256(cached) == entry.sha256
