"""Profiles speak in words: every setting and every allowed value has a description, every
row names a parent that exists, and overrides outside the allowed values are refused."""

from __future__ import annotations

import pytest
from iomemfuzz.model.profile import (
    ALLOWED_VALUES,
    DEFAULT,
    PROFILES,
    SETTING_WORDS,
    ProfileError,
    describe_setting,
    resolve,
)


def test_every_setting_and_every_allowed_value_has_words():
    settings = DEFAULT.settings()
    assert set(SETTING_WORDS) == set(settings) - {"by_design"}
    for name, allowed in ALLOWED_VALUES.items():
        assert set(SETTING_WORDS[name]) == set(allowed), name  # type: ignore[arg-type]
    for profile in PROFILES.values():
        for name, value in profile.settings().items():
            assert describe_setting(name, value)


def test_every_row_has_a_parent_but_the_root():
    roots = [p.name for p in PROFILES.values() if not p.parent]
    assert roots == [DEFAULT.name]
    for profile in PROFILES.values():
        assert not profile.parent or profile.parent in PROFILES
        assert profile.kernel


@pytest.mark.parametrize("name", sorted(ALLOWED_VALUES))
def test_text_settings_take_only_their_allowed_values(name):
    for value in ALLOWED_VALUES[name]:
        assert getattr(resolve(f"v6.1-deb:{name}={value}"), name) == value
    with pytest.raises(ProfileError) as info:
        resolve(f"v6.1-deb:{name}=zzz")
    assert all(repr(v) in str(info.value) for v in ALLOWED_VALUES[name])


def test_identity_fields_are_no_overrides():
    for field in ("name", "description", "parent", "kernel"):
        with pytest.raises(ProfileError):
            resolve(f"v6.1:{field}=x")
