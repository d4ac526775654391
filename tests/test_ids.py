"""Prediction ids: the real format, and derived (never random) so test suites see the same ids."""

from __future__ import annotations

from mock_server import ids


def test_ids_have_the_real_format() -> None:
    key = ids.request_key(0, "owner", "black-forest-labs/flux-schnell", {"prompt": "a"})
    for n in range(50):
        pid = ids.prediction_id(key, n)
        assert len(pid) == 26
        assert set(pid) <= set("0123456789abcdefghjkmnpqrstvwxyz")
        assert ids.is_valid(pid)


def test_same_request_same_key_whatever_the_key_order() -> None:
    a = ids.request_key(1, "o", "m", {"prompt": "a", "seed": 1})
    b = ids.request_key(1, "o", "m", {"seed": 1, "prompt": "a"})
    assert a == b


def test_each_part_of_the_request_changes_the_id() -> None:
    base = ids.request_key(1, "o", "m", {"prompt": "a"})
    others = [
        ids.request_key(2, "o", "m", {"prompt": "a"}),
        ids.request_key(1, "p", "m", {"prompt": "a"}),
        ids.request_key(1, "o", "n", {"prompt": "a"}),
        ids.request_key(1, "o", "m", {"prompt": "b"}),
    ]
    assert len({ids.prediction_id(k, 0) for k in [base, *others]}) == 5
    assert ids.prediction_id(base, 0) != ids.prediction_id(base, 1)


def test_invalid_ids() -> None:
    assert not ids.is_valid("a" * 25)
    assert not ids.is_valid("u" * 26)  # not in Crockford's alphabet
    assert not ids.is_valid("A" * 26)


def test_encode_reads_five_bit_groups_most_significant_first() -> None:
    """The table encoding equals the definition (ids must not change between versions)."""
    import hashlib

    from mock_server.ids import ALPHABET, encode

    for n in range(2000):
        data = hashlib.blake2b(str(n).encode(), digest_size=17).digest()
        number, bits = int.from_bytes(data, "big"), len(data) * 8
        expected = "".join(ALPHABET[(number >> (bits - 5 * (i + 1))) & 31] for i in range(26))
        assert encode(data) == expected
