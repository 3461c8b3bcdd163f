"""The callback envelope against Tencent's official test vectors (both sets, GET and POST): an implementation
that is not ours decides whether ours is right. Encrypting with the vectors' own random prefix reproduces
their ciphertext byte for byte."""

from __future__ import annotations

import base64
import re

import pytest

from wecom.callbacks.crypto import CallbackCrypto, CallbackRejected, signature

SET_A = CallbackCrypto.from_settings(
    "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"
)
SET_B = CallbackCrypto.from_settings(
    "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"
)
A_GET = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
A_POST_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUU"
    "kSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0"
    "ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMN"
    "S0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pD"
    "BS8R07+qN+E7Q=="
)
A_POST_MSG = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)
B_GET = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
B_POST_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+"
    "Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEb"
    "jbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84Ep"
    "HSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
B_POST_MSG = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
)


@pytest.mark.parametrize(
    ("crypto", "get", "plain", "prefix"),
    [
        (SET_A, A_GET, b"1616140317555161061", b"c41b64491c2468d0"),
        (SET_B, B_GET, b"1288432023552776189", b"8908d0ff052afda0"),
    ],
)
def test_url_verification_vectors(crypto, get, plain, prefix):
    crypto.verify(get["msg_signature"], get["timestamp"], get["nonce"], get["echostr"])
    assert crypto.decrypt(get["echostr"]) == plain
    assert crypto.encrypt(plain, random_prefix=prefix) == get["echostr"]


@pytest.mark.parametrize(
    ("crypto", "msg_signature", "timestamp", "nonce", "encrypted", "message", "prefix"),
    [
        (
            SET_A,
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            A_POST_ENCRYPT,
            A_POST_MSG,
            b"0960688932c47ef1",
        ),
        (
            SET_B,
            "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
            "1476422779",
            "1597212914",
            B_POST_ENCRYPT,
            B_POST_MSG,
            b"694ce5a83ae07fe3",
        ),
    ],
)
def test_event_vectors_decrypt_and_reencrypt_byte_exactly(
    crypto, msg_signature, timestamp, nonce, encrypted, message, prefix
):
    crypto.verify(msg_signature, timestamp, nonce, encrypted)
    assert crypto.decrypt(encrypted) == message.encode()
    assert crypto.encrypt(message.encode(), random_prefix=prefix) == encrypted


def test_the_documented_signature_example():
    assert (
        signature("QDG6eK", "1409659813", "1372623149", A_POST_ENCRYPT)
        == "477715d11cdb4164915debcba66cb864d751f3e6"
    )


def test_what_does_not_check_out_is_rejected_with_a_reason_that_echoes_nothing():
    with pytest.raises(CallbackRejected, match="signature"):
        SET_A.verify("0" * 40, A_GET["timestamp"], A_GET["nonce"], A_GET["echostr"])
    other_corp = CallbackCrypto(SET_A.token, SET_A.aes_key, "wwsomeoneelse")
    with pytest.raises(CallbackRejected, match="ReceiveId"):
        other_corp.decrypt(A_GET["echostr"])
    tampered = bytearray(base64.b64decode(A_POST_ENCRYPT))
    tampered[-1] ^= 0x55  # the last block decrypts to garbage: its padding no longer checks out
    with pytest.raises(CallbackRejected) as caught:
        SET_A.decrypt(base64.b64encode(bytes(tampered)).decode())
    assert re.fullmatch(r"[a-z ()A-Z]+", caught.value.reason)
    for junk in ("not base64!", "", base64.b64encode(b"x" * 17).decode()):
        with pytest.raises(CallbackRejected):
            SET_A.decrypt(junk)


def test_a_round_trip_with_random_prefixes_and_any_length():
    for size in (0, 1, 11, 12, 31, 32, 33, 500):
        message = ("变" * size).encode()
        sealed = SET_B.encrypt(message)
        assert SET_B.decrypt(sealed) == message and SET_B.encrypt(message) != sealed
