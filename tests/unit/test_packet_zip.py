"""The packet zip container: zipfile's bytes around ISA-L's deflate streams."""

from __future__ import annotations

import io
import os
import random
import zipfile

import pytest

from zentra_pipelines.domain import evidence as ev
from zentra_pipelines.domain import packet_zip as pz


def _members() -> list[pz.Member]:
    rng = random.Random(7)
    csv = "".join(f"t_alpha,in_{i:06d},{rng.randint(-10**9, 10**9)},EUR\n" for i in range(20_000)).encode()
    return [
        pz.Member("SHA256SUMS", b"", 1),  # empty member
        pz.Member("data/ledger_entries.csv", csv, 1),
        pz.Member("data/ledger_entries.parquet", rng.randbytes(70_000) + bytes(200_000), 0),  # > one stored block
        pz.Member("manifest.json", b'{"a": 1}', 1),
        pz.Member("z/incompressible.bin", rng.randbytes(100_000), 1),
    ]


def test_with_zlib_the_container_is_zipfiles_byte_for_byte() -> None:
    members = _members()
    assert pz.write_zip(members, compressor=pz.zlib_compressor) == pz.zip_with_zipfile(members)


def test_isal_streams_read_back_exactly_with_the_stdlib_reader() -> None:
    members = _members()
    data = pz.write_zip(members)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None  # every CRC checked
        assert [i.filename for i in zf.infolist()] == [m.name for m in members]
        for info, m in zip(zf.infolist(), members, strict=True):
            assert zf.read(info) == m.data
            assert (info.compress_type, info.date_time, info.create_system, info.external_attr) == (
                zipfile.ZIP_DEFLATED, (1980, 1, 1, 0, 0, 0), 3, 0o644 << 16,
            )
            assert info.extra == b"" and info.comment == b""


def test_only_the_deflate_streams_differ_from_zlibs() -> None:
    members = _members()
    ours, ref = pz.write_zip(members), pz.zip_with_zipfile(members)
    with zipfile.ZipFile(io.BytesIO(ours)) as a, zipfile.ZipFile(io.BytesIO(ref)) as b:
        for x, y in zip(a.infolist(), b.infolist(), strict=True):
            assert (x.filename, x.CRC, x.file_size, x.flag_bits) == (y.filename, y.CRC, y.file_size, y.flag_bits)
    # stored-block members (level 0) are compressed by zlib either way
    stored = [m for m in members if m.level == 0]
    assert pz.write_zip(stored) == pz.zip_with_zipfile(stored)


def test_the_same_members_give_the_same_bytes() -> None:
    assert pz.write_zip(_members()) == pz.write_zip(_members())


@pytest.mark.parametrize("limit", [10, 300_000])
def test_an_archive_that_could_need_zip64_is_left_to_zipfile(limit: int) -> None:
    """Refused by the size bound before compressing (350,000 bytes of members: bound ~369.5k)."""
    members = [pz.Member("a.csv", b"x" * 200_000, 1), pz.Member("b.bin", os.urandom(150_000), 0)]
    assert pz.write_zip(members, zip64_limit=limit) == pz.zip_with_zipfile(members)
    assert pz.write_zip(members) != pz.zip_with_zipfile(members)


class _Swelling:
    """A deflater whose output outgrows the 5% the size bound allows for."""

    def __init__(self, level: int) -> None:
        self._inner = pz.zlib_compressor(level)

    def compress(self, data: bytes) -> bytes:
        return self._inner.compress(data)

    def flush(self) -> bytes:
        return self._inner.flush() + bytes(200_000)


def test_an_archive_whose_streams_pass_the_limit_is_left_to_zipfile() -> None:
    """Under the bound before compressing (~369.5k <= 400k), over the limit after: the real
    offsets are checked too, so the ZIP64 decision never rests on the estimate alone."""
    members = [pz.Member("a.csv", b"x" * 200_000, 1), pz.Member("b.bin", os.urandom(150_000), 0)]
    assert pz.write_zip(members, compressor=_Swelling, zip64_limit=10**9) != pz.zip_with_zipfile(members)
    assert pz.write_zip(members, compressor=_Swelling, zip64_limit=400_000) == pz.zip_with_zipfile(members)


def test_packets_are_sealed_through_it() -> None:
    members = {"data/x.csv": b"a,b\n1,2\n" * 1000, "data/x.parquet": b"PAR1" * 10, "manifest.json": b"{}"}
    expected = [pz.Member(n, members[n], ev.deflate_level(n)) for n in sorted(members)]
    assert ev.deterministic_zip(members) == pz.write_zip(expected)
