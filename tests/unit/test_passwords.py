"""Login password hashes: salted scrypt, checked in constant time, never the password."""

from __future__ import annotations

from coffer.passwords import hash_password, verify_password


def test_hashes_are_salted_and_verify_only_the_right_password() -> None:
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b, "a fresh salt each time"
    assert a.startswith("scrypt$") and "correct horse" not in a
    assert verify_password("correct horse", a) and verify_password("correct horse", b)
    assert not verify_password("correct horsE", a)
    assert not verify_password("", a)


def test_no_user_or_an_unreadable_hash_never_verifies() -> None:
    assert not verify_password("anything", None)
    assert not verify_password("anything", "")
    assert not verify_password("anything", "md5$abc")
    assert not verify_password("anything", "scrypt$x$8$1$AAAA$AAAA")
    assert not verify_password("anything", "scrypt$3$8$1$AAAA$AAAA"), "n must be a power of 2"


def test_the_cost_parameters_travel_with_the_hash() -> None:
    stored = hash_password("pw-12345")
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**14, 8, 1)
    again = hash_password("pw-12345").split("$")
    assert again[4] != salt and again[5] != key
