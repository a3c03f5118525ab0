"""Matching foreign image references to the project's images (server/formats/_names.py)."""

from __future__ import annotations

from server.formats._names import NameIndex, candidates


def test_references_are_matched_by_file_name_keeping_folders_apart() -> None:
    index = NameIndex.build([("cat/001.jpg", 64, 48), ("dog/001.jpg", 32, 16), ("002.png", 8, 8),
                             ("x/002.png", 8, 8), ("a b.jpg", 1, 1)])
    assert index.resolve("s3://bucket/photos/dog/001.jpg") == ("dog/001.jpg", (32, 16))
    assert index.find("/data/local-files/?d=cat%2F001.jpg") == "cat/001.jpg"
    assert index.find("http://ls:8080/data/upload/3/1a2b3c4d-002.png") == "002.png"  # exact wins
    assert index.find("001.jpg") is None  # cat or dog: refused, not guessed
    assert index.find("photos/a%20b.jpg") == "a b.jpg"
    assert index.find("dog/001", stem=True) == "dog/001.jpg"
    assert index.resolve("zzz.jpg") == ("zzz.jpg", None)
    assert candidates("C:\\data\\cat\\001.jpg") == ["C:/data/cat/001.jpg", "data/cat/001.jpg",
                                                    "cat/001.jpg", "001.jpg"]
