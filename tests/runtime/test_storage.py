"""Storage locations: local paths and pyarrow.fs URIs (a real S3 API from moto), no Ray."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.support.s3_server import S3Server, s3_bucket, s3_server  # noqa: F401  (fixtures)
from troupe.runtime.errors import ConfigError
from troupe.runtime.storage.location import LakeLocationError, Storage, is_uri, normalize, open_storage, redact

TABLE = pa.table({"x": pa.array([1, 2, 3], pa.int64()), "s": ["a", "b", None]})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The same tests on local disk and on S3."""
    if request.param == "local":
        return open_storage(tmp_path / "store")
    s3: S3Server = request.getfixturevalue("s3_server")
    return open_storage(s3.uri(s3.new_bucket("store"), "some/prefix"))


def test_locations_are_normalized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize("rel/lake") == str(tmp_path.resolve() / "rel" / "lake")
    assert normalize(Path("~/x")) == str(Path.home().resolve() / "x")
    st = open_storage("file:///tmp/some%20lake")
    assert st.local and st.base == "/tmp/some lake" and st.location == "file:///tmp/some%20lake"
    assert st.ref("events/a.parquet") == Path("/tmp/some lake/events/a.parquet")
    uri = "s3://b/p?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"
    assert normalize(uri) == uri and open_storage(uri) is open_storage(uri)  # URIs are opened once
    s3 = open_storage(uri)
    assert (s3.base, s3.local, s3.object_store) == ("b/p", False, True)
    assert s3.path("events/x") == "b/p/events/x"
    # A ref is a URI that pyarrow opens again; percent signs of hive keys survive it.
    ref = s3.ref("events/run_id=a%20b/f.parquet")
    assert ref == "s3://b/p/events/run_id=a%2520b/f.parquet?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"
    assert pafs.FileSystem.from_uri(str(ref))[1] == "b/p/events/run_id=a%20b/f.parquet"
    assert is_uri("gs://b/x") and not is_uri("/a/b") and not is_uri(Path("s3://x"))


@pytest.mark.parametrize(
    ("location", "expect"),
    [
        ("nope://bucket/x", "Unrecognized filesystem type"),
        ("s3://b/x?colour=blue&region=us-east-1", "Unexpected query parameter in S3 URI: 'colour'"),
        ("s3://?region=us-east-1", "names no bucket"),
        ("s3:bucket/x", "looks like a URI without '//'"),
        (Path("s3://bucket/x"), "'s3:/bucket/x' looks like a URI without '//': write s3://"),
        ("   ", "empty"),
    ],
)
def test_bad_locations_say_what_is_wrong_and_how_to_fix_it(location: str | Path, expect: str) -> None:
    with pytest.raises(LakeLocationError, match=expect) as info:
        open_storage(location)
    assert isinstance(info.value, ConfigError)
    assert "s3://bucket/prefix" in info.value.message  # the fix: what a good location looks like


def test_secrets_are_masked_in_messages() -> None:
    uri = "s3://AKID:sup3rs3cret@b/p?region=us-east-1&colour=x"
    assert redact(uri) == "s3://AKID:***@b/p?region=us-east-1&colour=x"
    assert redact("/plain/path") == "/plain/path"
    with pytest.raises(LakeLocationError) as info:
        open_storage(uri)
    assert "sup3rs3cret" not in info.value.message and "AKID:***@b" in info.value.message
    assert str(open_storage("s3://AKID:sup3rs3cret@b/p?region=us-east-1")) == "s3://AKID:***@b/p?region=us-east-1"


def test_write_list_read_delete(store: Storage) -> None:
    assert store.file_infos("nothing/here") == [] and store.dirs("nothing") == [] and not store.is_file("a.json")
    store.write_bytes("runs/a.json", b'{"a": 1}')
    store.write_bytes("runs/a.json", b'{"a": 2}')  # replaced
    store.write_bytes("runs/b.txt", b"b")
    assert store.read_bytes("runs/a.json") == b'{"a": 2}' and store.is_file("runs/a.json")
    assert store.files("runs") == ["runs/a.json", "runs/b.txt"]
    assert store.files("runs", suffix=".json") == ["runs/a.json"]
    rel = store.write_parquet("tables/k=1", TABLE, compression="zstd")
    assert rel.startswith("tables/k=1/part-") and rel.endswith(".parquet")
    assert store.read_table(rel).equals(TABLE) and store.read_table(rel, columns=["s"]).column_names == ["s"]
    assert store.dirs() == ["runs", "tables"] and store.dirs("tables") == ["k=1"]
    assert store.files("tables", recursive=True) == [rel] and store.files("tables") == []
    assert not any(".tmp" in i.path for i in store.fs.get_file_info(pafs.FileSelector(store.base, recursive=True)))
    store.delete(rel)
    store.delete(rel)  # already gone: fine
    assert store.files("tables", recursive=True) == []
    with pytest.raises(FileNotFoundError):
        store.read_bytes("runs/missing.json")


def test_refs_open_the_same_file(store: Storage) -> None:
    rel = store.write_parquet("d/run_id=a%2Fb", TABLE)
    ref = store.ref(rel)
    assert isinstance(ref, Path) is store.local
    assert pq.read_table(ref).equals(TABLE)  # a URI carries its endpoint, region and keys


def _names(store: Storage) -> list[str]:
    selector = pafs.FileSelector(store.base, recursive=True, allow_not_found=True)
    return [i.base_name for i in store.fs.get_file_info(selector)]


def test_a_failed_write_leaves_nothing_behind(store: Storage) -> None:
    with pytest.raises(pa.ArrowException, match="Unsupported compression"):
        store.write_parquet("t", TABLE, compression="nope")
    assert store.file_infos("t", recursive=True) == [] and not any(n.startswith(".") for n in _names(store))


def test_a_failed_rename_removes_its_temporary_file(tmp_path: Path) -> None:
    store = open_storage(tmp_path)
    (tmp_path / "taken" / "inner").mkdir(parents=True)  # a non-empty directory cannot be replaced
    with pytest.raises(OSError):
        store.write_bytes("taken", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_dataset_reads_hive_keys_from_paths(store: Storage) -> None:
    store.write_parquet("ds/run_id=a%20b", TABLE)
    store.write_parquet("ds/run_id=2024", TABLE)
    files = store.file_infos("ds", suffix=".parquet", recursive=True)
    schema = TABLE.schema.append(pa.field("run_id", pa.string()))
    part = ds.partitioning(pa.schema([("run_id", pa.string())]), flavor="hive")
    got = store.dataset(files, "ds", schema=schema, partitioning=part).to_table()
    assert sorted(set(got["run_id"].to_pylist())) == ["2024", "a b"] and got.num_rows == 6


class _DeletedWhileRead:
    """An S3 filesystem where another process deletes each file right after it is opened (its size asked
    for) and before its bytes are: what a memory compaction does to a log file a reader listed."""

    def __init__(self, fs: pafs.FileSystem) -> None:
        self._fs = fs

    def __getattr__(self, name: str) -> object:
        return getattr(self._fs, name)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        f = self._fs.open_input_stream(path)
        self._fs.delete_file(path)
        return f

    def open_input_file(self, path: str) -> pa.NativeFile:
        f = self._fs.open_input_file(path)
        self._fs.delete_file(path)
        return f


def test_a_file_deleted_while_read_on_s3_is_not_found(s3_server: S3Server, s3_bucket: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 answers the GET of an object deleted after its HEAD with NO_SUCH_KEY, which pyarrow raises as a
    plain OSError: read_bytes and read_table say FileNotFoundError, as for any missing file (a memory store
    retries its listing on that; an OSError killed its writer)."""
    real = open_storage(s3_server.uri(s3_bucket, "race"))
    racing = Storage(_DeletedWhileRead(real.fs), real.base, real.location)
    real.write_bytes("a.json", b"{}")
    with pytest.raises(FileNotFoundError, match="deleted while being read"):
        racing.read_bytes("a.json")
    rel = real.write_parquet("log", TABLE)
    read_table = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda source, columns=None, filesystem=None: read_table(
        filesystem.open_input_file(source), columns=columns))  # the dataset's HEAD, then its GETs
    with pytest.raises(FileNotFoundError, match="deleted while being read"):
        racing.read_table(rel)
    assert real.files() == []
    real.write_bytes("b.json", b"{}")
    monkeypatch.setattr(Storage, "is_file", lambda self, rel: True)  # still there: a failing store stays an OSError
    with pytest.raises(OSError) as info:
        racing.read_bytes("b.json")
    assert not isinstance(info.value, FileNotFoundError)


def test_credentials_from_the_environment(s3_server: S3Server, s3_bucket: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No keys in the URI: the AWS SDK's own chain (here the AWS_* variables) supplies them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    st = open_storage(s3_server.uri(s3_bucket, "env-creds", credentials=False))
    st.write_bytes("x.json", b"{}")
    assert st.files() == ["x.json"]
    assert s3_server.keys(s3_bucket) == ["env-creds/x.json"]
