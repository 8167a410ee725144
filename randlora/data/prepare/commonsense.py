"""Commonsense data (Table 1) from LLM-Adapters at a pinned commit, verified file by file.

Source: github.com/AGI-Edgerunners/LLM-Adapters at commit ``COMMIT`` (the one /work/shared/data/commonsense
came from). Laid out as the commonsense task reads it (``configs/task/commonsense.yaml``)::

    <root>/commonsense_15k.json  <root>/commonsense_170k.json  <root>/<task>/test.json   (8 tasks)

Every file is pinned by the git blob id the commit's tree lists for it (sha1 over the content: a file that
verifies is byte for byte the committed one). Where the content was available when this table was written,
its size, sha256 and record count are pinned as well; the remaining record counts (hellaswag, 15k, 170k) are
recorded in the manifest when the files are first downloaded rather than guessed here.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..manifest import write_manifest
from .download import DownloadError, Expected, fetch, verify

COMMIT = "816657208af4db747803f87ba40a4c71383fed7a"
BASE_URL = f"https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/{COMMIT}"


@dataclass(frozen=True)
class PinnedFile:
    """``source``: path in the LLM-Adapters repository; ``target``: path under our root."""

    source: str
    target: str
    git_blob: str
    size: int | None = None
    sha256: str | None = None
    records: int | None = None

    @property
    def expected(self) -> Expected:
        return Expected(self.size, self.sha256, self.git_blob)


def _test(task: str, blob: str, size: int | None = None, sha256: str | None = None,
          records: int | None = None) -> PinnedFile:
    return PinnedFile(f"dataset/{task}/test.json", f"{task}/test.json", blob, size, sha256, records)


FILES: dict[str, PinnedFile] = {f.target: f for f in (
    PinnedFile("ft-training_set/commonsense_15k.json", "commonsense_15k.json",
               "3716afef6d384c475dba13f88a5a96c8032dafe2"),
    PinnedFile("ft-training_set/commonsense_170k.json", "commonsense_170k.json",
               "529e426b33d4cdb1d0c4a275a1a7245ad081fd91"),
    _test("boolq", "6d7edb0a8e8a6566b546ccf0d98d24e48db3fdf3", 899151,
          "89df2397cbca81dc31adcc6f7f5b635821aa0565aafde46725b2b4bd39b4dfa9", 3270),
    _test("piqa", "f7a1c260692ef31796d4763cb6334f316a754fed", 913157,
          "3860d11b9b42e590b6b4bbc1643214d373ed0b0d4ac62fcc7bdceb8e044ad141", 1838),
    _test("social_i_qa", "eadf221799ca394367b144c0f86ee0436db409d2", 843748,
          "71543f41127451945379d106ffedaef502f1c8770dff6d2f543aca85e3080b1d", 1954),
    _test("hellaswag", "183c4920415f83ba4b793c4873a33e7e10bd1be5"),
    _test("winogrande", "21257263593dd4d00546e1918c88ca0f357b08ad", 497409,
          "6946f5209e7114c65c6d04f8f644c5a061af20d730b1cfe158fff3dc44076fb9", 1267),
    _test("ARC-Easy", "6c0d30aaedaeca148df6bcd7aaacf7c31e6ad70f", 1157216,
          "3f32a84716ca6d57d38728bf80cc8117aecd17445c2cf29a68b571b810eb82dc", 2376),
    _test("ARC-Challenge", "9540685439144200b5a7e48dab9ca4655be2af09", 622510,
          "4a89ce368ae01a71d268d9851686738b2a0a1d84271116bab49a1dd2b48ecad7", 1172),
    _test("openbookqa", "a6e69676104bcb77237388c3b5a3f0dcbb81d1e2", 202545,
          "8479930f7b8a26052c78250280b5465a4016ca7fc806af440d0f37e243f3099e", 500),
)}


def count_records(path: Path) -> int:
    """Number of records of an LLM-Adapters JSON list (``ValueError`` naming the file if it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return len(data)


def select(names: list[str] | None) -> list[PinnedFile]:
    """The pinned files named by target or task (``boolq`` = ``boolq/test.json``); all when ``names`` is None."""
    if names is None:
        return list(FILES.values())
    chosen = []
    for name in names:
        key = name if name in FILES else f"{name}/test.json"
        if key not in FILES:
            raise ValueError(f"--datasets: unknown commonsense file '{name}'; allowed: "
                             f"{', '.join(f.target.removesuffix('/test.json') for f in FILES.values())}")
        chosen.append(FILES[key])
    return chosen


def prepare(root: str | Path, names: list[str] | None = None, base_url: str = BASE_URL) -> dict[str, int]:
    """Download (or keep, when already verified) the chosen files under ``root``; return records per file.

    Raises :class:`DownloadError` for a file that cannot be fetched or does not verify, ``ValueError`` for a
    verified file whose record count differs from the pin (which would mean the table here is wrong).
    """
    root = Path(root)
    counts = {}
    for pinned in select(names):
        path = fetch(f"{base_url}/{pinned.source}", root / pinned.target, pinned.expected)
        counts[pinned.target] = count_records(path)
        if pinned.records is not None and counts[pinned.target] != pinned.records:
            raise ValueError(f"{path}: {counts[pinned.target]} records, expected {pinned.records}")
    write_root_manifest(root)
    return counts


def write_root_manifest(root: Path) -> dict:
    """``<root>/manifest.json``: commit, and records and sha256 of every pinned file present."""
    files = {}
    for pinned in FILES.values():
        path = root / pinned.target
        if path.is_file():
            files[pinned.target] = {"records": count_records(path),
                                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    manifest = {"benchmark": "commonsense", "source": f"AGI-Edgerunners/LLM-Adapters@{COMMIT}", "files": files}
    write_manifest(root, manifest)
    return manifest


def check(root: str | Path, names: list[str] | None = None) -> list[str]:
    """One line per problem of the commonsense files under ``root`` (missing, wrong content, wrong count)."""
    root = Path(root)
    problems = []
    for pinned in select(names):
        path = root / pinned.target
        if not path.is_file():
            problems.append(f"commonsense: missing {path} (python scripts/prepare_data.py commonsense "
                            f"--root {root})")
            continue
        mismatch = verify(path, pinned.expected)
        if mismatch is not None:
            problems.append(f"commonsense: {path}: {mismatch}")
            continue
        records = count_records(path)
        if pinned.records is not None and records != pinned.records:
            problems.append(f"commonsense: {path}: {records} records, expected {pinned.records}")
    return problems


__all__ = ["BASE_URL", "COMMIT", "FILES", "DownloadError", "PinnedFile", "check", "count_records", "prepare",
           "select"]
