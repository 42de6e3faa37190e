"""Adapter registry: `Channel.adapter` names one of these."""

from __future__ import annotations

from apps.gateways.adapters.sandbox import SandboxAdapter
from apps.gateways.base import ChannelAdapter, ChannelError

ADAPTERS: dict[str, type[ChannelAdapter]] = {"sandbox": SandboxAdapter}


def get_adapter(channel) -> ChannelAdapter:
    """The adapter instance for a `Channel` row; an unknown adapter key is a ChannelError (fail over)."""
    try:
        adapter_class = ADAPTERS[channel.adapter]
    except KeyError:
        raise ChannelError(f"Channel {channel.code} names an unknown adapter {channel.adapter!r}.") from None
    return adapter_class(channel)
