"""permessage-deflate (RFC 7692) with a bounded inflater.

wsproto's ``PerMessageDeflate`` inflates each received chunk in one call: a
64 KiB read of a crafted message can become gigabytes before any size check
runs. :class:`BoundedDeflate` inflates with ``max_length`` set to what is
left of ``max_message_size`` (plus one byte to detect the overrun), so memory
stays bounded by the limit and the message is refused with 1009 (section
8.1 of RFC 7692 leaves limits to the implementation).

It also lets the local side choose a smaller compression window and drop
the compression context between messages, the two knobs that bound the
per-connection memory of zlib (``Settings.deflate_window_bits`` and
``Settings.deflate_no_context_takeover``).

wsproto's private state is reached through :class:`.frames.DeflateState`
only (see that module).
"""

from __future__ import annotations

import zlib

from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from .frames import DeflateState, Inflater

__all__ = ["BoundedDeflate", "parse_offer"]

_SYNC_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 section 7.2.2
_NO_RSV = RsvBits(False, False, False)
# zlib's memLevel for our compressor: 5 instead of 8 cuts its hash table from
# 128 KiB to 16 KiB per connection for a few percent of ratio (websockets
# made the same choice after measuring).
_MEM_LEVEL = 5


class BoundedDeflate(DeflateState):
    """permessage-deflate that never inflates past ``max_message_size``."""

    def __init__(
        self,
        *,
        client: bool,
        max_message_size: int | None,
        window_bits: int = 15,
        no_context_takeover: bool = False,
    ) -> None:
        if client:
            # We compress with the client window: promise it in the offer.
            super().__init__(
                client_no_context_takeover=no_context_takeover,
                client_max_window_bits=window_bits,
            )
        else:
            super().__init__(server_no_context_takeover=no_context_takeover)
        self._client_side = client
        self._local_window = window_bits
        self._limit = max_message_size
        self._inflated = 0
        self._in_control = False

    def accept(self, offer: str) -> bool | str | None:
        """Accept the first valid offer only; decline invalid ones (RFC 7692 5)."""
        if self.enabled():
            return None  # several offers: the first acceptable one is answered
        params = parse_offer(offer)
        if params is None:
            return None
        saved = (self.client_no_context_takeover, self.server_no_context_takeover,
                 self.client_max_window_bits, self.server_max_window_bits)
        normalized = "; ".join(
            ["permessage-deflate"] + [k if v is None else f"{k}={v}" for k, v in params.items()]
        )
        accepted = super().accept(normalized)
        # Defensive: wsproto declines only window bits outside 8-15, which
        # parse_offer() already refused; kept so a stricter wsproto cannot
        # leave us half-configured.
        if not isinstance(accepted, str):  # pragma: no cover
            # Declined: forget what parsing this offer set on us.
            (self.client_no_context_takeover, self.server_no_context_takeover,
             self.client_max_window_bits, self.server_max_window_bits) = saved
            self.forget_agreement()
            return None
        # RFC 7692 7.1.2.1: a server may limit its own window even when the
        # client did not ask, by answering with server_max_window_bits.
        if self._local_window < self.server_max_window_bits:
            kept = [p for p in accepted.split("; ")
                    if p and not p.startswith("server_max_window_bits")]
            kept.append(f"server_max_window_bits={self._local_window}")
            self.server_max_window_bits = self._local_window
            accepted = "; ".join(kept)
        return accepted

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            bits = self.client_max_window_bits if proto.client else self.server_max_window_bits
            self.start_compressor(bits, _MEM_LEVEL)
        return super().frame_outbound(proto, opcode, rsv, data, fin)

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        # Control frames may come between the fragments of a compressed
        # message (RFC 6455 5.4): they must not touch the message's state.
        self._in_control = opcode.iscontrol()
        if self._in_control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else _NO_RSV
        if opcode is not Opcode.CONTINUATION:
            self._inflated = 0
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._in_control or not self.inbound_compressed or not self.inbound_is_compressible:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._in_control:
            return None
        if not fin or not self.inbound_is_compressible or not self.inbound_compressed:
            return super().frame_inbound_complete(proto, fin)
        result = self._inflate(_SYNC_TAIL, tail=True)
        if isinstance(result, CloseReason):
            return result
        no_takeover = (self.server_no_context_takeover if proto.client
                       else self.client_no_context_takeover)
        if no_takeover:
            self.inflater = None
        self.end_inbound_message()
        return result

    def _new_inflater(self) -> Inflater:
        bits = self.server_max_window_bits if self._client_side else self.client_max_window_bits
        inflater = zlib.decompressobj(-bits)
        self.inflater = inflater
        return inflater

    def _inflate(self, data: bytes, *, tail: bool = False) -> bytes | CloseReason:
        inflater = self.inflater or self._new_inflater()
        if inflater.eof:
            # The previous data ended with a final deflate block (BFINAL=1):
            # zlib is done with that stream, so the next one starts afresh,
            # and the sync tail we append after it has nothing to end.
            inflater = self._new_inflater()
            if tail:
                return b""
        limit = self._limit
        try:
            if limit is None:
                out = inflater.decompress(data)
            else:
                # max_length 0 would mean "no limit": the budget is at least 1.
                out = inflater.decompress(data, limit - self._inflated + 1)
                if inflater.unconsumed_tail:
                    return CloseReason.MESSAGE_TOO_BIG
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if limit is not None and self._inflated > limit:
            return CloseReason.MESSAGE_TOO_BIG
        if inflater.eof and inflater.unused_data and not tail:
            more = self._inflate(inflater.unused_data)
            if isinstance(more, CloseReason):
                return more
            out += more
        return out


_PARAMS = {
    "server_no_context_takeover": "flag",
    "client_no_context_takeover": "flag",
    "server_max_window_bits": "bits",
    "client_max_window_bits": "optional bits",
}


def parse_offer(offer: str) -> dict[str, str | None] | None:
    """The parameters of one permessage-deflate offer, or None if invalid.

    RFC 7692 section 5: an offer with an unknown parameter, a parameter
    given twice or an invalid value must be declined. Values may be quoted
    (RFC 6455 section 9.1).
    """
    name, *parts = (part.strip() for part in offer.split(";"))
    if name != "permessage-deflate":
        return None
    params: dict[str, str | None] = {}
    for part in parts:
        key, eq, value = (x.strip() for x in part.partition("="))
        kind = _PARAMS.get(key)
        if kind is None or key in params:
            return None
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if kind == "flag":
            if eq:
                return None
            params[key] = None
        elif not eq and kind == "optional bits":
            params[key] = None
        elif value.isdigit() and len(value) <= 2 and 8 <= int(value) <= 15:
            params[key] = value
        else:
            return None
    return params
