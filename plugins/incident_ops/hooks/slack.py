"""Post and update the incident's Slack messages through the Slack provider's SlackHook."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property, partial
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.providers.slack.hooks.slack import SlackHook
from airflow.sdk import BaseHook
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from incident_ops.hooks.errors import (
    SlackDeliveryError,
    SlackNotConfiguredError,
    SlackPermanentError,
    SlackTransientError,
    slack_error_for,
)
from include.http_retry import parse_retry_after
from include.names import SLACK_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Callable

    from slack_sdk.http_retry import RetryHandler
    from slack_sdk.web.slack_response import SlackResponse

__all__ = ["MESSAGE_EVENT_TYPE", "IncidentSlackHook", "SlackMessageRef"]

log = logging.getLogger(__name__)

# slack_sdk decides whether to format request/response bodies for DEBUG logging by looking at the
# logger's *own* level (NOTSET counts as "debug on"), so the SDK gets a dedicated logger pinned to
# INFO: message text and blocks never reach the logs, whatever the root level is.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.INFO)

# The message metadata event every incident message carries, with its outbox key in the payload: a
# post whose answer was lost is found again by it (conversations.history / conversations.replies).
MESSAGE_EVENT_TYPE = "incident_message"
# How many pages (of 200 messages) a look-up reads before concluding the message is not there.
_LOOKUP_PAGES = 5


@dataclass(frozen=True)
class SlackMessageRef:
    """Where a Slack message lives: channel id and message timestamp."""

    channel: str
    ts: str


class IncidentSlackHook(BaseHook):
    """
    Post and update Slack messages through the Airflow connection ``slack_api_default``.

    HTTP 429 answers are waited out (``Retry-After``) and retried by slack_sdk itself, and
    connection failures are retried once or more; everything that still fails is raised as a
    :class:`~incident_ops.hooks.errors.SlackPermanentError` or
    :class:`~incident_ops.hooks.errors.SlackTransientError`.

    :param slack_conn_id: Slack API connection (token in the password, optional ``base_url``,
        ``timeout`` and ``proxy`` in the extra).
    :param max_rate_limit_retries: How many HTTP 429 answers to wait out per call.
    :param max_connection_retries: How many connection failures to retry per call.
    """

    conn_name_attr = "slack_conn_id"
    default_conn_name = SLACK_CONN_ID
    conn_type = "slack"
    hook_name = "Slack (incident messages)"

    def __init__(
        self,
        *,
        slack_conn_id: str = SLACK_CONN_ID,
        max_rate_limit_retries: int = 3,
        max_connection_retries: int = 1,
    ) -> None:
        super().__init__()
        if not slack_conn_id:
            raise ValueError("slack_conn_id must be a non-empty string")
        if max_rate_limit_retries < 0:
            raise ValueError("max_rate_limit_retries must be >= 0")
        if max_connection_retries < 0:
            raise ValueError("max_connection_retries must be >= 0")
        self.slack_conn_id = slack_conn_id
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_connection_retries = max_connection_retries

    def retry_handlers(self) -> list[RetryHandler]:
        """Build the slack_sdk retry handlers used for every call."""
        # Passing retry_handlers replaces slack_sdk's defaults (connection errors only), so the
        # connection handler is listed explicitly. 5xx is deliberately not retried here: the post
        # may have landed, and a blind retry would duplicate it; the task's retry policy decides.
        handlers: list[RetryHandler] = [
            RateLimitErrorRetryHandler(max_retry_count=self.max_rate_limit_retries)
        ]
        if self.max_connection_retries:
            handlers.append(ConnectionErrorRetryHandler(max_retry_count=self.max_connection_retries))
        return handlers

    @cached_property
    def provider_hook(self) -> SlackHook:
        """Return the provider hook (built lazily; the connection is read on first call)."""
        return SlackHook(
            slack_conn_id=self.slack_conn_id,
            retry_handlers=self.retry_handlers(),
            logger=_sdk_log,
        )

    def post_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> SlackMessageRef:
        """Post a message (a thread reply when ``thread_ts`` is given), tagged with ``key`` if given."""
        if not channel:
            raise ValueError("channel must be a non-empty string")
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if key:
            kwargs["metadata"] = {"event_type": MESSAGE_EVENT_TYPE, "event_payload": {"key": key}}
        response = self._call(
            "chat.postMessage", channel, lambda: self.provider_hook.client.chat_postMessage(**kwargs)
        )
        ref = self._ref(response, "chat.postMessage", channel)
        log.info("Posted Slack message channel=%s ts=%s thread_ts=%s", ref.channel, ref.ts, thread_ts)
        return ref

    def find_message(
        self, *, channel: str, key: str, thread_ts: str | None = None, oldest: str | None = None
    ) -> SlackMessageRef | None:
        """Return the message posted with ``key`` in the thread (or channel, after ``oldest``), if any."""
        if not channel or not key:
            raise ValueError("channel and key must be non-empty strings")
        client = self.provider_hook.client
        args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
        if thread_ts:
            method, args["ts"] = "conversations.replies", thread_ts
        else:
            method = "conversations.history"
            if oldest:
                args["oldest"] = oldest
        fetch = client.conversations_replies if thread_ts else client.conversations_history
        cursor = None
        for _ in range(_LOOKUP_PAGES):
            page_args = {**args, "cursor": cursor} if cursor else args
            response = self._call(method, channel, partial(fetch, **page_args))
            data = response.data if isinstance(response.data, dict) else {}
            for message in data.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == MESSAGE_EVENT_TYPE and payload.get("key") == key:
                    answered = data.get("channel")
                    return SlackMessageRef(
                        channel=answered if isinstance(answered, str) else channel, ts=str(message["ts"])
                    )
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

    def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> SlackMessageRef:
        """Replace the text (and blocks) of an existing message via ``chat.update``."""
        if not channel or not ts:
            raise ValueError("channel and ts must be non-empty strings")
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        response = self._call("chat.update", channel, lambda: self.provider_hook.client.chat_update(**kwargs))
        ref = self._ref(response, "chat.update", channel)
        log.info("Updated Slack message channel=%s ts=%s", ref.channel, ref.ts)
        return ref

    def _call(self, method: str, channel: str, send: Callable[[], SlackResponse]) -> SlackResponse:
        """Run one Slack call and translate every failure into a typed delivery error."""
        try:
            return send()
        except SlackApiError as exc:
            response = exc.response
            data = response.data if isinstance(response.data, dict) else {}
            error = slack_error_for(
                status_code=response.status_code,
                error=data.get("error"),
                method=method,
                channel=channel,
                retry_after=parse_retry_after(response.headers),
            )
            self._log_failure(error)
            raise error from exc
        except AirflowNotFoundException as exc:
            # Raised by SlackHook for a missing connection or one without a token.
            error = SlackNotConfiguredError("not_configured", method=method, channel=channel)
            self._log_failure(error)
            raise error from exc
        except SlackRequestError as exc:
            # Client-side refusal (e.g. a base_url that is not http[s]): retrying cannot help.
            error = SlackPermanentError("invalid_request", method=method, channel=channel)
            self._log_failure(error)
            raise error from exc
        except (OSError, HTTPException) as exc:
            # URLError, timeouts and resets that outlived ConnectionErrorRetryHandler.
            error = SlackTransientError("connection_error", method=method, channel=channel)
            self._log_failure(error)
            raise error from exc

    @staticmethod
    def _ref(response: SlackResponse, method: str, channel: str) -> SlackMessageRef:
        """Extract channel and ts from a successful answer."""
        data = response.data if isinstance(response.data, dict) else {}
        ts, channel_id = data.get("ts"), data.get("channel")
        if not isinstance(ts, str) or not isinstance(channel_id, str):
            raise SlackTransientError("invalid_response", method=method, channel=channel)
        return SlackMessageRef(channel=channel_id, ts=ts)

    @staticmethod
    def _log_failure(error: SlackDeliveryError) -> None:
        """Log a failed call with its code and target only."""
        log.warning(
            "Slack %s failed: error=%s permanent=%s channel=%s http_status=%s",
            error.method,
            error.error_code,
            error.permanent,
            error.channel,
            error.status_code,
        )
