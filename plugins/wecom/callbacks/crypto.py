"""WeCom's callback envelope: the ``msg_signature`` and the AES-256-CBC body (WXBizMsgCrypt's format).

Signature: ``sha1`` of the sorted values (token, timestamp, nonce, the encrypted text), lowercase hex.
Body: ``base64(AES-256-CBC(key, iv=key[:16], pkcs7_32(random16 ‖ len32be(msg) ‖ msg ‖ receive_id)))`` where
``key = base64(EncodingAESKey + "=")``. Padding is PKCS#7 to **32-byte** blocks (1..32 bytes), not 16.
Everything that does not check out raises ``CallbackRejected`` with a reason safe to log (no input echoed);
secrets that cannot be WeCom's raise ``SettingsError`` (ours: configuration, see ``wecom.errors``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wecom.errors import SettingsError

BLOCK = 32  # WeCom pads to 32 bytes, whatever AES's own block size


class CallbackRejected(ValueError):
    """A callback that is not WeCom's, or not for us; ``reason`` is short and never echoes the input.

    Not a ``wecom.errors.WeComError``: nothing of ours failed and nothing is to be retried. It is the
    receiver's verdict on a request from the internet, answered 4xx and logged, and never leaves the receiver
    (WeCom retries a genuine delivery on its own)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


@dataclass(frozen=True)
class CallbackCrypto:
    """One app's callback secrets: the Token, the EncodingAESKey and the corp id messages must carry."""

    token: str = field(repr=False)
    aes_key: bytes = field(repr=False)
    receive_id: str

    @classmethod
    def from_settings(cls, token: str, encoding_aes_key: str, receive_id: str) -> CallbackCrypto:
        if not token or not encoding_aes_key:
            raise SettingsError(
                "callback_token and callback_aes_key must both be set in the WeCom connection's extra"
            )
        if len(encoding_aes_key) != 43:
            raise SettingsError(
                "callback_aes_key (EncodingAESKey) must be the 43 characters the admin console shows"
            )
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            raise SettingsError("callback_aes_key (EncodingAESKey) is not valid base64") from None
        return cls(token=token, aes_key=key, receive_id=receive_id)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), (msg_signature or "").encode()):
            raise CallbackRejected("signature mismatch")

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside the envelope, after checking its length, padding and ReceiveId."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRejected("body is not base64") from None
        if not data or len(data) % 16:
            raise CallbackRejected("ciphertext length is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self.aes_key), modes.CBC(self.aes_key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackRejected("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CallbackRejected("message too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CallbackRejected("message length out of range")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CallbackRejected("message is for another corp (ReceiveId)")
        return message

    def encrypt(self, message: bytes, random_prefix: bytes | None = None) -> str:
        """The envelope WeCom would send (the simulator and passive replies); the prefix is random unless
        given (a fixed one reproduces Tencent's test vectors)."""
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        if len(prefix) != 16:
            raise ValueError("the random prefix is 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self.aes_key), modes.CBC(self.aes_key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
