"""One subscriber-id rule: the socket's `auth` frame (subscriber_id_valid) and the API's fields take the same ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notifications.proofs import subscriber_id_valid
from notifications.schemas import TopicSubscribersIn


@pytest.mark.parametrize(
    ("subscriber_id", "valid"),
    [
        ("u_42", True),
        ("ünïcode and spaces", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("", False),
        ("a/b", False),
        ("tab\there", False),
        ("line\n", False),
        ("nul\x00", False),
        ("del\x7f", False),
    ],
)
def test_the_socket_and_the_api_take_the_same_subscriber_ids(subscriber_id: str, valid: bool) -> None:
    try:
        TopicSubscribersIn(subscriber_ids=[subscriber_id])
        api_takes = True
    except ValidationError:
        api_takes = False
    assert api_takes is valid
    assert subscriber_id_valid(subscriber_id) is valid


@pytest.mark.parametrize("value", [None, 42, b"u_42", ["u_42"]])
def test_a_subscriber_id_that_is_not_a_string_is_refused(value: object) -> None:
    assert subscriber_id_valid(value) is False
