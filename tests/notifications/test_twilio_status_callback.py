"""POST /webhooks/twilio/status/: Twilio delivery reports, authenticated with X-Twilio-Signature
(RELIABILITY.md G6 and bad input 19) and applied once per sid + status, never backwards."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import pytest
import responses

from apps.notifications.models import Notification, ProviderStatusEvent
from tests.notifications.support import (
    AUTH_TOKEN,
    MESSAGES_URL,
    PUBLIC_BASE_URL,
    STATUS_PATH,
    STATUS_URL,
    by_channel,
    message_json,
    new_sid,
    sign,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

S = Notification.Status
EVENT = "refund:1:delayed"


@pytest.fixture
def sms(twilio_accepts, customer, notify_and_send) -> Notification:
    """A high-priority refund_delayed message whose SMS Twilio accepted (status `sent`)."""
    sms = notify_and_send(customer, event_key=EVENT)["sms"]
    assert sms.status == S.SENT
    assert sms.provider_id.startswith("SM")
    return sms


@pytest.fixture
def voice(twilio_accepts, customer, notify_and_send) -> Notification:
    voice = notify_and_send(customer, event_key=EVENT, priority="critical")["voice"]
    assert voice.status == S.SENT
    assert voice.provider_id.startswith("CA")
    return voice


def sms_report(sms: Notification, status: str, **extra) -> dict:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "To": sms.address,
        "MessageSid": sms.provider_id,
        "SmsSid": sms.provider_id,
        "MessageStatus": status,
        "SmsStatus": status,
        **extra,
    }


def call_report(voice: Notification, status: str) -> dict:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": voice.provider_id,
        "CallStatus": status,
        "Direction": "outbound-api",
        "From": "+15005550006",
        "To": voice.address,
        "CallDuration": "12" if status == "completed" else "0",
    }


def post_signed(client, params: dict, *, signed_params: dict | None = None, url: str = STATUS_URL):
    signature = sign(params if signed_params is None else signed_params, url=url)
    return client.post(STATUS_PATH, params, HTTP_X_TWILIO_SIGNATURE=signature)


def snapshot() -> dict:
    """Everything a delivery report can change."""
    return {
        "events": ProviderStatusEvent.objects.count(),
        "rows": list(
            Notification.objects.order_by("pk").values_list(
                "pk", "status", "provider_status", "updated_at", "delivered_at", "failed_at"
            )
        ),
    }


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["fields"] == {}


# --- accepted reports -------------------------------------------------------------------------


def test_valid_delivered_marks_the_sms_delivered_and_records_one_event(client, sms):
    response = post_signed(client, sms_report(sms, "delivered"))

    assert response.status_code == 204
    sms.refresh_from_db()
    assert sms.status == S.DELIVERED
    assert sms.provider_status == "delivered"
    assert sms.delivered_at is not None
    event = ProviderStatusEvent.objects.get()
    assert (event.provider, event.provider_id, event.status, event.notification_id) == (
        "twilio",
        sms.provider_id,
        "delivered",
        sms.pk,
    )
    assert event.payload == sms_report(sms, "delivered")


def test_replayed_report_is_204_and_still_one_event(client, sms):
    params = sms_report(sms, "delivered")
    first = post_signed(client, params)
    sms.refresh_from_db()
    delivered_at = sms.delivered_at

    replays = [post_signed(client, params) for _ in range(3)]

    assert first.status_code == 204
    assert [r.status_code for r in replays] == [204, 204, 204]
    assert ProviderStatusEvent.objects.count() == 1
    sms.refresh_from_db()
    assert sms.status == S.DELIVERED
    assert sms.delivered_at == delivered_at


def test_out_of_order_sent_after_delivered_stays_delivered(client, sms):
    assert post_signed(client, sms_report(sms, "delivered")).status_code == 204
    assert post_signed(client, sms_report(sms, "sent")).status_code == 204
    assert post_signed(client, sms_report(sms, "queued")).status_code == 204

    sms.refresh_from_db()
    assert sms.status == S.DELIVERED
    assert ProviderStatusEvent.objects.filter(notification=sms).count() == 3


def test_undelivered_falls_back_to_push_and_inbox_exactly_once_even_when_replayed(client, twilio_accepts, sms):
    params = sms_report(sms, "undelivered", ErrorCode="30003")
    responses_before = len(twilio_accepts.calls)

    statuses = [post_signed(client, params).status_code for _ in range(3)]

    assert statuses == [204, 204, 204]
    sms.refresh_from_db()
    assert sms.status == S.UNDELIVERED
    assert sms.failed_at is not None
    assert "30003" in sms.last_error
    rows = by_channel(EVENT)
    assert set(rows) == {"sms", "push", "inbox"}
    assert Notification.objects.filter(channel="push").count() == 1
    assert Notification.objects.filter(channel="inbox").count() == 1
    assert ProviderStatusEvent.objects.count() == 1
    # nothing was sent to Twilio again
    assert len(twilio_accepts.calls) == responses_before
    # and a later "delivered" (out of order) does not resurrect it
    assert post_signed(client, sms_report(sms, "delivered")).status_code == 204
    sms.refresh_from_db()
    assert sms.status == S.UNDELIVERED


def test_undelivered_critical_sms_creates_its_push_fallback_exactly_once(
    client, twilio_accepts, customer, notify_and_send
):
    sms = notify_and_send(customer, event_key=EVENT, priority="critical")["sms"]
    params = sms_report(sms, "undelivered", ErrorCode="30005")

    for _ in range(3):
        assert post_signed(client, params).status_code == 204

    push = Notification.objects.get(event_key=EVENT, channel="push")
    assert push.fallback_of_id == sms.pk
    assert Notification.objects.filter(event_key=EVENT).count() == 4  # sms, voice, inbox, push
    assert ProviderStatusEvent.objects.count() == 1


def test_a_report_that_overtakes_the_dispatch_reaches_the_row_its_url_names(
    client, twilio, mocked, customer, notify_and_send
):
    """Twilio may report before `messages.create` has returned (a bad number fails at once), so
    before the dispatch has recorded the sid. The callback URL names the row: the report lands,
    the row falls back, and the dispatch then leaves the row as the report left it."""
    answers = []

    def create_and_report_at_once(request):
        sent = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        sid, callback_url = new_sid("SM"), sent["StatusCallback"][0]
        report = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003", "To": sent["To"][0]}
        path = callback_url.removeprefix(PUBLIC_BASE_URL)
        answers.append(client.post(path, report, HTTP_X_TWILIO_SIGNATURE=sign(report, url=callback_url)))
        return 201, {}, json.dumps(message_json(sid, body=sent["Body"][0]))

    mocked.add_callback(responses.POST, MESSAGES_URL, callback=create_and_report_at_once)
    rows = notify_and_send(customer, event_key=EVENT)

    assert [a.status_code for a in answers] == [204]
    sms = rows["sms"]
    assert sms.status == S.UNDELIVERED
    assert sms.provider_id.startswith("SM")
    assert sms.sent_at is not None
    assert "30003" in sms.last_error
    assert list(ProviderStatusEvent.objects.values_list("notification_id", "status")) == [(sms.pk, "undelivered")]
    # The fallback channels (push, inbox) were already part of this high-priority message: once each.
    assert sorted(Notification.objects.filter(event_key=EVENT).values_list("channel", flat=True)) == [
        "inbox",
        "push",
        "sms",
    ]


def test_a_url_naming_a_row_that_has_another_sid_is_404_and_writes_nothing(client, sms):
    params = sms_report(sms, "delivered", MessageSid="SM" + "f" * 32, SmsSid="SM" + "f" * 32)
    url = f"{STATUS_URL}?n={sms.pk}"
    before = snapshot()

    response = client.post(f"{STATUS_PATH}?n={sms.pk}", params, HTTP_X_TWILIO_SIGNATURE=sign(params, url=url))

    assert_error(response, 404, "unknown_sid")
    assert snapshot() == before


def test_voice_completed_marks_the_call_delivered(client, voice):
    response = post_signed(client, call_report(voice, "completed"))

    assert response.status_code == 204
    voice.refresh_from_db()
    assert voice.status == S.DELIVERED
    assert ProviderStatusEvent.objects.filter(provider_id=voice.provider_id, status="completed").count() == 1


@pytest.mark.parametrize("call_status", ["no-answer", "busy"])
def test_voice_no_answer_marks_the_call_undelivered_without_a_second_sms(client, twilio_accepts, voice, call_status):
    responses_before = len(twilio_accepts.calls)

    for _ in range(2):
        assert post_signed(client, call_report(voice, call_status)).status_code == 204

    voice.refresh_from_db()
    assert voice.status == S.UNDELIVERED
    # voice falls back to SMS + inbox, both already written for this critical cause
    assert Notification.objects.filter(event_key=EVENT, channel="sms").count() == 1
    assert Notification.objects.filter(event_key=EVENT, channel="inbox").count() == 1
    assert Notification.objects.filter(event_key=EVENT).count() == 3
    assert ProviderStatusEvent.objects.count() == 1
    assert len(twilio_accepts.calls) == responses_before


# --- refused reports: nothing written ---------------------------------------------------------


def test_invalid_signature_is_403_and_writes_nothing(client, sms, caplog):
    before = snapshot()
    params = sms_report(sms, "delivered")

    with caplog.at_level(logging.WARNING, logger="apps.notifications.views"):
        response = client.post(STATUS_PATH, params, HTTP_X_TWILIO_SIGNATURE=sign(params, token="not-the-token"))

    assert_error(response, 403, "signature_mismatch")
    assert snapshot() == before
    warnings = [r for r in caplog.records if r.name == "apps.notifications.views"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    logged = warnings[0].getMessage()
    assert sms.address not in logged
    assert sms.provider_id not in logged


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_or_empty_signature_is_403_and_writes_nothing(client, sms, header):
    before = snapshot()
    extra = {} if header is None else {"HTTP_X_TWILIO_SIGNATURE": header}

    response = client.post(STATUS_PATH, sms_report(sms, "delivered"), **extra)

    assert_error(response, 403, "signature_mismatch")
    assert snapshot() == before


def test_signature_for_the_http_url_is_403_when_the_public_url_is_https(client, sms):
    before = snapshot()
    http_url = STATUS_URL.replace("https://", "http://")

    response = post_signed(client, sms_report(sms, "delivered"), url=http_url)

    assert_error(response, 403, "signature_mismatch")
    assert snapshot() == before


def test_signature_for_another_path_or_query_is_403(client, sms):
    before = snapshot()
    params = sms_report(sms, "delivered")

    other_path = post_signed(client, params, url=STATUS_URL.replace("/status/", "/other/"))
    with_query = client.post(STATUS_PATH + "?n=1", params, HTTP_X_TWILIO_SIGNATURE=sign(params))

    assert_error(other_path, 403, "signature_mismatch")
    assert_error(with_query, 403, "signature_mismatch")
    assert snapshot() == before


def test_parameter_added_after_signing_is_403(client, sms):
    before = snapshot()
    signed = sms_report(sms, "sent")

    response = post_signed(client, {**signed, "ErrorCode": "30003"}, signed_params=signed)

    assert_error(response, 403, "signature_mismatch")
    assert snapshot() == before


def test_value_changed_after_signing_is_403(client, sms):
    before = snapshot()
    signed = sms_report(sms, "sent")

    response = post_signed(client, {**signed, "MessageStatus": "delivered"}, signed_params=signed)

    assert_error(response, 403, "signature_mismatch")
    assert snapshot() == before


def test_repeated_parameter_with_another_value_is_403(client, sms):
    """`MessageStatus=undelivered&MessageStatus=sent`: a dict of last values would still match the
    signature of the original "sent" report; the validator sees both values."""
    before = snapshot()
    signed = sms_report(sms, "sent")
    tampered = {**signed, "MessageStatus": ["undelivered", "sent"]}

    response = client.post(STATUS_PATH, tampered, HTTP_X_TWILIO_SIGNATURE=sign(signed))

    assert_error(response, 403, "signature_mismatch")
    assert snapshot() == before


def test_without_a_configured_auth_token_every_report_is_403(client, sms, settings):
    before = snapshot()
    params = sms_report(sms, "delivered")
    settings.TWILIO_AUTH_TOKEN = ""

    response = client.post(STATUS_PATH, params, HTTP_X_TWILIO_SIGNATURE=sign(params, token=AUTH_TOKEN))
    empty_key = client.post(STATUS_PATH, params, HTTP_X_TWILIO_SIGNATURE=sign(params, token=""))

    assert_error(response, 403, "signature_unverifiable")
    assert_error(empty_key, 403, "signature_unverifiable")
    assert snapshot() == before


def test_unknown_sid_with_a_valid_signature_is_404_and_writes_nothing(client, sms):
    before = snapshot()
    params = {**sms_report(sms, "delivered"), "MessageSid": "SM" + "f" * 32, "SmsSid": "SM" + "f" * 32}

    response = post_signed(client, params)

    assert_error(response, 404, "unknown_sid")
    assert snapshot() == before


@pytest.mark.parametrize("drop", [("MessageSid", "SmsSid"), ("MessageStatus", "SmsStatus")])
def test_missing_sid_or_status_is_400_and_writes_nothing(client, sms, drop):
    before = snapshot()
    params = {k: v for k, v in sms_report(sms, "delivered").items() if k not in drop}

    response = post_signed(client, params)

    assert_error(response, 400, "validation_error")
    assert snapshot() == before


def test_get_is_405_and_writes_nothing(client, sms):
    before = snapshot()
    params = sms_report(sms, "delivered")

    response = client.get(STATUS_PATH, params, HTTP_X_TWILIO_SIGNATURE=sign(params))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert snapshot() == before


def test_signed_report_with_more_fields_than_the_form_bound_is_400_and_writes_nothing(client, sms, settings):
    """The form parse is bounded (DATA_UPLOAD_MAX_NUMBER_FIELDS) as the JSON webhooks' is by depth."""
    before = snapshot()
    params = {**sms_report(sms, "delivered"), **{f"X{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)}}

    response = post_signed(client, params)

    assert_error(response, 400, "payload_invalid")
    assert snapshot() == before


def test_signed_report_over_the_size_limit_is_413_and_writes_nothing(client, sms, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    before = snapshot()
    params = {**sms_report(sms, "delivered"), "Body": "x" * 2048}

    response = post_signed(client, params)

    assert_error(response, 413, "payload_too_large")
    assert snapshot() == before


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_405_in_the_error_shape(client, sms, method):
    before = snapshot()

    response = getattr(client, method)(STATUS_PATH)

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    assert snapshot() == before
