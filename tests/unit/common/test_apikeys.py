"""API keys: shape, hashing, and the e2b_ spelling of the same secret."""

import pytest

from agent_sandbox.common.apikeys import (
    InvalidApiKey,
    as_e2b_key,
    generate_api_key,
    hash_api_key,
    hash_prefix,
    verify_api_key,
)


def test_generated_key_shape():
    key = generate_api_key()
    assert key.startswith("asb_")
    assert len(key) == 44
    int(key[4:], 16)
    assert generate_api_key() != key


def test_e2b_spelling_hashes_the_same():
    key = generate_api_key()
    e2b = as_e2b_key(key)
    assert e2b == "e2b_" + key[4:]
    assert hash_api_key(key) == hash_api_key(e2b)
    assert verify_api_key(e2b, hash_api_key(key))


def test_wrong_key_and_garbage_do_not_verify():
    key, other = generate_api_key(), generate_api_key()
    stored = hash_api_key(key)
    assert not verify_api_key(other, stored)
    assert not verify_api_key("asb_nothex", stored)
    assert not verify_api_key("", stored)


def test_hash_is_not_the_key():
    key = generate_api_key()
    digest = hash_api_key(key)
    assert key[4:] not in digest
    assert len(digest) == 64
    assert hash_prefix(digest) == digest[:16]


@pytest.mark.parametrize("bad", ["", "asb_", "abc_" + "0" * 40, "asb_" + "0" * 39, "asb_" + "g" * 40])
def test_invalid_shapes_raise(bad):
    with pytest.raises(InvalidApiKey):
        hash_api_key(bad)
