"""Provider API keys are stored encrypted; keys rotate without losing stored secrets."""

from __future__ import annotations

import base64

import pytest

from shared.secrets_box import SecretBox, SecretUndecryptable


def test_round_trip() -> None:
    box = SecretBox.from_setting(SecretBox.generate_key())
    for secret in ("sk-live-0123456789abcdef", "", "ключ 🔑 with spaces"):
        assert box.decrypt(box.encrypt(secret)) == secret


def test_ciphertext_hides_the_plaintext_and_differs_each_time() -> None:
    box = SecretBox.from_setting(SecretBox.generate_key())
    secret = "sk-live-0123456789abcdef"
    first, second = box.encrypt(secret), box.encrypt(secret)
    assert secret not in first
    assert first != secret
    assert first != second
    assert box.decrypt(first) == box.decrypt(second) == secret


def test_generated_keys_are_distinct_and_usable() -> None:
    keys = {SecretBox.generate_key() for _ in range(5)}
    assert len(keys) == 5
    for key in keys:
        SecretBox([key])


def test_rotation_keeps_old_tokens_readable() -> None:
    old_key, new_key = SecretBox.generate_key(), SecretBox.generate_key()
    old_box = SecretBox.from_setting(old_key)
    stored = old_box.encrypt("sk-old")

    rotated_box = SecretBox.from_setting(f"{new_key}, {old_key}")
    assert rotated_box.key_count == 2
    assert rotated_box.decrypt(stored) == "sk-old"

    # New secrets are encrypted with the first (new) key: the old key alone cannot read them.
    fresh = rotated_box.encrypt("sk-new")
    with pytest.raises(SecretUndecryptable):
        old_box.decrypt(fresh)
    assert SecretBox.from_setting(new_key).decrypt(fresh) == "sk-new"

    # Re-encrypting moves old tokens to the new key, after which the old key can go.
    moved = rotated_box.rotate(stored)
    assert SecretBox.from_setting(new_key).decrypt(moved) == "sk-old"


def test_wrong_key_fails_clearly() -> None:
    token = SecretBox.from_setting(SecretBox.generate_key()).encrypt("sk-secret")
    other = SecretBox.from_setting(SecretBox.generate_key())
    with pytest.raises(SecretUndecryptable, match="cannot be decrypted with any configured key"):
        other.decrypt(token)
    with pytest.raises(SecretUndecryptable):
        other.rotate(token)


@pytest.mark.parametrize("token", ["", "not-a-token", "gAAAAAB" + "A" * 80, "tökén"])
def test_garbage_tokens_fail_clearly(token: str) -> None:
    box = SecretBox.from_setting(SecretBox.generate_key())
    with pytest.raises(SecretUndecryptable):
        box.decrypt(token)


def test_tampered_token_fails() -> None:
    box = SecretBox.from_setting(SecretBox.generate_key())
    token = box.encrypt("sk-secret")
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    with pytest.raises(SecretUndecryptable):
        box.decrypt(tampered)


# A valid key, fixed: parallel test workers must collect the same test ids.
FIXED_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("", "has no keys"),
        (" , ", "has no keys"),
        ("not-a-fernet-key", "Key #1 of 1 in SECRET_KEYS is not a valid Fernet key"),
        (f"{FIXED_KEY},short", "Key #2 of 2 in SECRET_KEYS"),
        ("A" * 22 + "==", "not a valid Fernet key"),  # valid base64, but only 16 bytes
    ],
)
def test_bad_key_settings_raise_value_error(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        SecretBox.from_setting(setting, setting="SECRET_KEYS")
    assert "short" not in str(error.value)  # the keys themselves are never echoed


def test_keys_never_show_in_repr() -> None:
    key = SecretBox.generate_key()
    box = SecretBox.from_setting(key)
    assert key not in repr(box)
    assert repr(box) == "SecretBox(keys=1)"


def test_a_single_string_is_not_a_key_list() -> None:
    with pytest.raises(TypeError):
        SecretBox(SecretBox.generate_key())
