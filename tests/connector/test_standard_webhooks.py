"""Standard Webhooks signatures: the published test vector, then every way a delivery fails."""

import base64

import pytest

from connector.standard_webhooks import SignatureError, headers_for, sign, verify

# The test vector published by the Standard Webhooks specification.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()


def vector_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": SIGNATURE,
    }
    headers.update(overrides)
    return headers


# --- the published vector ------------------------------------------------------------------


def test_sign_produces_the_published_test_vector_signature():
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_verify_accepts_the_published_test_vector_and_returns_the_message_id():
    assert verify(SECRET, vector_headers(), BODY, now=TIMESTAMP) == MSG_ID


def test_headers_for_gives_the_three_standard_headers():
    assert headers_for(SECRET, MSG_ID, TIMESTAMP, BODY) == vector_headers()


def test_a_delivery_built_with_headers_for_verifies():
    headers = headers_for(OTHER_SECRET, "msg_1", 1_700_000_000, b"{}")
    assert verify(OTHER_SECRET, headers, b"{}", now=1_700_000_000) == "msg_1"


def test_a_secret_without_the_whsec_prefix_gives_the_same_signature():
    bare = SECRET.removeprefix("whsec_")
    assert sign(bare, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert verify(bare, vector_headers(), BODY, now=TIMESTAMP) == MSG_ID


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_abc", "whsec_@@@@", "%%%%"])
def test_a_secret_that_is_not_valid_base64_raises_value_error(secret):
    with pytest.raises(ValueError, match="not valid base64"):
        sign(secret, MSG_ID, TIMESTAMP, BODY)


def test_verify_with_a_secret_that_is_not_valid_base64_raises_value_error():
    with pytest.raises(ValueError, match="not valid base64"):
        verify("whsec_abc", vector_headers(), BODY, now=TIMESTAMP)


# --- forged or altered deliveries ----------------------------------------------------------


def test_a_tampered_body_is_rejected():
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify(SECRET, vector_headers(), b'{"test": 2432232315}', now=TIMESTAMP)


def test_a_tampered_message_id_is_rejected():
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify(SECRET, vector_headers(**{"webhook-id": "msg_other"}), BODY, now=TIMESTAMP)


def test_a_tampered_timestamp_within_tolerance_is_rejected_by_the_signature():
    headers = vector_headers(**{"webhook-timestamp": str(TIMESTAMP + 1)})
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_signature_made_with_another_secret_is_rejected():
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify(OTHER_SECRET, vector_headers(), BODY, now=TIMESTAMP)


def test_a_signature_with_one_altered_character_is_rejected():
    altered = SIGNATURE[:-2] + ("A" if SIGNATURE[-2] != "A" else "B") + SIGNATURE[-1]
    with pytest.raises(SignatureError):
        verify(SECRET, vector_headers(**{"webhook-signature": altered}), BODY, now=TIMESTAMP)


# --- timestamps ----------------------------------------------------------------------------


def signed_at(timestamp: int) -> dict[str, str]:
    return headers_for(SECRET, MSG_ID, timestamp, BODY)


def test_a_timestamp_exactly_at_the_tolerance_is_accepted_both_ways():
    assert verify(SECRET, signed_at(TIMESTAMP - 300), BODY, now=TIMESTAMP) == MSG_ID
    assert verify(SECRET, signed_at(TIMESTAMP + 300), BODY, now=TIMESTAMP) == MSG_ID


def test_a_correctly_signed_timestamp_too_old_is_rejected():
    with pytest.raises(SignatureError, match="more than 300 s old"):
        verify(SECRET, signed_at(TIMESTAMP - 301), BODY, now=TIMESTAMP)


def test_a_correctly_signed_timestamp_too_far_in_the_future_is_rejected():
    with pytest.raises(SignatureError, match="more than 300 s in the future"):
        verify(SECRET, signed_at(TIMESTAMP + 301), BODY, now=TIMESTAMP)


def test_the_published_vector_is_too_old_once_the_tolerance_has_passed():
    with pytest.raises(SignatureError, match="old"):
        verify(SECRET, vector_headers(), BODY, now=TIMESTAMP + 301)


def test_the_tolerance_can_be_changed():
    headers = signed_at(TIMESTAMP - 1000)
    assert verify(SECRET, headers, BODY, now=TIMESTAMP, tolerance=1000) == MSG_ID
    with pytest.raises(SignatureError, match="more than 10 s old"):
        verify(SECRET, signed_at(TIMESTAMP - 11), BODY, now=TIMESTAMP, tolerance=10)


@pytest.mark.parametrize("timestamp", ["1614265330.5", "abc", "2021-02-25T15:02:10Z", "0x60"])
def test_a_timestamp_that_is_not_an_integer_is_rejected(timestamp):
    headers = vector_headers(**{"webhook-timestamp": timestamp})
    with pytest.raises(SignatureError, match="must be a Unix time in seconds"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


# --- missing headers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_rejected_naming_it(name):
    headers = vector_headers()
    del headers[name]
    with pytest.raises(SignatureError, match=f"missing header\\(s\\): {name}$"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_an_empty_header_counts_as_missing(name):
    headers = vector_headers(**{name: ""})
    with pytest.raises(SignatureError, match=f"missing header\\(s\\): {name}$"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_all_missing_headers_are_named_together():
    with pytest.raises(SignatureError) as exc:
        verify(SECRET, {}, BODY, now=TIMESTAMP)
    assert str(exc.value) == "missing header(s): webhook-id, webhook-timestamp, webhook-signature"


# --- several signatures --------------------------------------------------------------------


def test_several_signatures_are_accepted_when_only_the_second_is_valid():
    old = sign(OTHER_SECRET, MSG_ID, TIMESTAMP, BODY)
    headers = vector_headers(**{"webhook-signature": f"{old} {SIGNATURE}"})
    assert verify(SECRET, headers, BODY, now=TIMESTAMP) == MSG_ID


def test_several_signatures_are_rejected_when_none_is_valid():
    first = sign(OTHER_SECRET, MSG_ID, TIMESTAMP, BODY)
    second = sign(OTHER_SECRET, MSG_ID, TIMESTAMP, b"other body")
    headers = vector_headers(**{"webhook-signature": f"{first} {second}"})
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_a_v2_entry_is_ignored_even_with_the_right_hmac():
    v2 = "v2," + SIGNATURE.removeprefix("v1,")
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify(SECRET, vector_headers(**{"webhook-signature": v2}), BODY, now=TIMESTAMP)


def test_a_v2_entry_next_to_a_valid_v1_signature_does_not_prevent_acceptance():
    headers = vector_headers(**{"webhook-signature": f"v2,whatever {SIGNATURE}"})
    assert verify(SECRET, headers, BODY, now=TIMESTAMP) == MSG_ID


def test_a_signature_entry_without_a_version_is_ignored():
    bare = SIGNATURE.removeprefix("v1,")
    with pytest.raises(SignatureError):
        verify(SECRET, vector_headers(**{"webhook-signature": bare}), BODY, now=TIMESTAMP)
