"""Property-based fuzzing of the knowledge-base import through the real app, as a ``user``:
whatever archive arrives (random or hostile manifests, document ids that are paths, entries
named like paths, symlink and directory entries, nested ZIPs, lying headers, every compression
method), the answer is 2xx or 4xx, never 5xx, and no file appears outside the new base's
folder."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Actors, make_settings
from tests.faults.results import record_bad_inputs, sized
from tests.fuzz.strategies import any_json

EXAMPLES = sized(80, 800)
ESCAPE = "/tmp/flotilla-kb-fuzz-escape.txt"  # noqa: S108 - a name the fuzzer aims at, checked
HOSTILE_NAMES = [
    "../../../secret.key",
    "/etc/passwd",
    "/proc/self/environ",
    "..",
    ".",
    "",
    "docs",
    "a/b",
    "..\\..\\x",
    ESCAPE,
    "x\x00y",
    "kb.json",
    "A" * 65,
]
DOC_TEXT = "Gift cards are sold in amounts of 25, 50 and 100 euro and are valid for two years."


class Target:
    """The app in-process, a signed-in user and an honest export to mutate."""

    def __init__(self, client: TestClient, headers: dict[str, str], root: Path) -> None:
        self.client = client
        self.headers = headers
        self.root = root
        kb = client.post("/admin/knowledge", json={"name": "T"}, headers=headers).json()["id"]
        files = {"file": ("gifts.txt", DOC_TEXT.encode(), "text/plain")}
        res = client.post(f"/admin/knowledge/{kb}/documents", files=files, headers=headers)
        assert res.status_code == 201, res.text
        export = client.get(f"/admin/knowledge/{kb}/export", headers=headers).content
        with zipfile.ZipFile(io.BytesIO(export)) as zf:
            self.template = {n: zf.read(n) for n in zf.namelist()}
        self.manifest = json.loads(self.template["manifest.json"])
        self.doc_id = self.manifest["documents"][0]["id"]
        self.export = export


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from orchestrator.main import create_app

    root = tmp_path_factory.mktemp("kbfuzz")
    settings = make_settings(
        root,
        f"sqlite:///{root / 'orchestrator.db'}",
        ai_max_import_bytes=4 * 1024 * 1024,
        ai_max_import_expanded_bytes=8 * 1024 * 1024,
        ai_max_chunks=200,
        ai_pdf_timeout_s=5.0,
    )
    with TestClient(create_app(settings)) as client:
        yield Target(client, Actors(client).add("mallory", "user"), root)


def _wrap(value: int, bits: int) -> int:
    half = 2 ** (bits - 1)
    return (value + half) % (2 * half) - half


def index_bytes(d: int, ntotal: int, floats: int, tail: int) -> bytes:
    """An IndexFlatIP header with any numbers (wrapped to their field widths)."""
    d, ntotal = _wrap(d, 32), _wrap(ntotal, 64)
    head = struct.pack("<4siqqqBiQ", b"IxFI", d, ntotal, 1 << 20, 1 << 20, 1, 0, floats % 2**64)
    return head + b"\0" * tail


ints = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.sampled_from(
    [0, 1, 2, 384, 2**30, 2**31, 2**62, -1]
)
ids = st.sampled_from(HOSTILE_NAMES) | st.text(max_size=20)
documents = st.fixed_dictionaries(
    {
        "id": ids,
        "filename": st.sampled_from(["a.txt", "b.pdf", "c", "../../d.txt", "/etc/passwd"])
        | st.text(max_size=20),
        "kind": st.sampled_from(["txt", "pdf", "md", "html", "qa", "exe", ""]),
    },
    optional={"size_bytes": ints, "chunks": ints, "added_at": any_json},
)
manifest_values = {
    "format": st.sampled_from(["flotilla-kb", "other"]) | any_json,
    "version": st.sampled_from([0, 1, 2, True, "1"]) | any_json,
    "chunks": ints | any_json,
    "vectors": ints | any_json,
    "dim": ints | any_json,
    "embedding_model": st.sampled_from(["other-model", ""]) | any_json,
    "name": st.text(max_size=300) | any_json,
    "documents": st.lists(documents, max_size=3) | any_json,
}


#: True three times in four.
mostly = st.sampled_from([True, True, True, False])


@st.composite
def contents(draw: st.DrawFn, target: Target) -> bytes:
    kind = draw(st.sampled_from(["binary", "template", "nested", "zeros", "json", "index"]))
    if kind == "binary":
        return draw(st.binary(max_size=512))
    if kind == "template":
        return target.template[draw(st.sampled_from(sorted(target.template)))]
    if kind == "nested":
        return target.export
    if kind == "zeros":
        return b"\0" * draw(st.sampled_from([0, 1, 1024 * 1024 + 1, 3 * 1024 * 1024]))
    if kind == "json":
        return json.dumps(draw(any_json)).encode()
    return index_bytes(draw(ints), draw(ints), draw(ints), draw(st.sampled_from([0, 8, 1536])))


@st.composite
def archives(draw: st.DrawFn, target: Target) -> bytes:
    entries: dict[str, bytes] = dict(target.template)
    manifest = dict(target.manifest)
    for key in draw(st.lists(st.sampled_from(sorted(manifest_values)), max_size=2)):
        manifest[key] = draw(manifest_values[key])
    if draw(st.booleans()):
        docs = (
            list(manifest.get("documents") or [])
            if isinstance(manifest.get("documents"), list)
            else []
        )
        manifest["documents"] = docs + draw(st.lists(documents, min_size=1, max_size=2))
    entries["manifest.json"] = (
        json.dumps(manifest).encode() if draw(mostly) else draw(contents(target))
    )
    for name in draw(st.lists(st.sampled_from(sorted(target.template)), max_size=2)):
        if draw(st.booleans()):
            entries.pop(name, None)
        else:
            entries[name] = draw(contents(target))
    extra_names = (
        st.sampled_from([f"docs/{n}" for n in HOSTILE_NAMES] + HOSTILE_NAMES)
        | st.builds(
            lambda i, s: f"docs/{i}{s}", ids, st.sampled_from([".txt", ".pdf", ".json", ""])
        )
        | st.text(max_size=30)
    )
    extras = draw(st.lists(st.tuples(extra_names, contents(target)), max_size=4))
    kinds = st.sampled_from(["file", "file", "symlink", "dir"])
    methods = st.sampled_from(
        [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
    )
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are one of the things tried
        for name, data in [*entries.items(), *extras]:
            info = zipfile.ZipInfo(name or "_")
            info.compress_type = draw(methods)
            kind = draw(kinds)
            if kind == "symlink":
                info.external_attr = (0o120777 << 16) | 0x20
                data = draw(
                    st.sampled_from([b"/etc/passwd", b"../../../secret.key", ESCAPE.encode()])
                )
            elif kind == "dir":
                info.filename = info.filename.rstrip("/") + "/"
                info.external_attr = (0o40755 << 16) | 0x10
                data = b""
            zf.writestr(info, data)
    archive = buf.getvalue()
    if not draw(mostly):  # flip a few bytes: lying headers, broken streams
        raw = bytearray(archive)
        for pos, value in draw(
            st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4)
        ):
            raw[pos] = value
        archive = bytes(raw)
    return archive


def snapshot(root: Path) -> set[Path]:
    skip = {
        "orchestrator.db",
        "orchestrator.db-wal",
        "orchestrator.db-shm",
        "orchestrator.db-journal",
    }
    return {p for p in root.rglob("*") if p.name not in skip and (p.is_file() or p.is_symlink())}


def test_import_answers_4xx_and_writes_nothing_outside_the_base(target: Target) -> None:
    tried = 0
    statuses: dict[int, int] = {}
    data_dir = target.root / "data"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
        database=None,
    )
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        nonlocal tried
        archive = data.draw(archives(target))
        tried += 1
        before = snapshot(target.root)
        res = target.client.post(
            "/admin/knowledge/import",
            files={"file": ("kb.zip", archive, "application/zip")},
            headers=target.headers,
        )
        statuses[res.status_code] = statuses.get(res.status_code, 0) + 1
        assert res.status_code < 500, res.text
        assert res.status_code in (201, 400, 413, 415, 422), res.text
        new = snapshot(target.root) - before
        if res.status_code == 201:
            base = (data_dir / "kb" / res.json()["id"]).resolve()
            outside = [p for p in new if not p.resolve().is_relative_to(base)]
            assert not outside, outside
            assert not [p for p in base.rglob("*") if p.is_symlink()]
            deleted = target.client.delete(
                f"/admin/knowledge/{res.json()['id']}", headers=target.headers
            )
            assert deleted.status_code == 204
        else:
            assert not new, f"a refused import left {sorted(new)}"
        assert not Path(ESCAPE).exists()

    prop()
    record_bad_inputs("kb.import", tried)
    assert tried > 0
    assert statuses.get(201, 0) + sum(v for k, v in statuses.items() if 400 <= k < 500) == tried
