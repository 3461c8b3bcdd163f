"""Payload builders: wire bodies, byte limits, splitting and chunking, all before any call."""

from __future__ import annotations

import json

import pytest

from wecom.payloads import (
    DuplicateCheck,
    MessageError,
    Recipients,
    byte_len,
    markdown,
    news,
    request_body,
    split_markdown,
    text,
    text_notice_card,
    textcard,
)


def test_each_msgtype_has_the_wire_body_wecom_expects():
    dup = DuplicateCheck(interval=3600)
    to = {"touser": "zhangsan|lisi"}
    assert request_body(to, text("你好"), dup) == {
        "touser": "zhangsan|lisi", "msgtype": "text", "text": {"content": "你好"}, "safe": 0,
        "enable_duplicate_check": 1, "duplicate_check_interval": 3600,
    }  # fmt: skip
    assert markdown("**面试**")["markdown"] == {"content": "**面试**"}
    card = textcard("面试提醒", "10:00 后端工程师", "https://example.com/room/1", "进入")["textcard"]
    assert card == {
        "title": "面试提醒",
        "description": "10:00 后端工程师",
        "url": "https://example.com/room/1",
        "btntxt": "进入",
    }
    assert news([{"title": "a", "url": "https://x", "picurl": "https://p"}])["news"]["articles"] == [
        {"title": "a", "url": "https://x", "picurl": "https://p"}
    ]
    notice = text_notice_card("面试", "https://x", description="今天", fields=[("候选人", "王五")])[
        "template_card"
    ]
    assert notice["card_type"] == "text_notice" and notice["card_action"] == {"type": 1, "url": "https://x"}
    assert notice["horizontal_content_list"] == [{"keyname": "候选人", "value": "王五"}]
    body = json.dumps(request_body(to, text("同样"), dup), ensure_ascii=False)
    assert body == json.dumps(
        request_body(to, text("同样"), dup), ensure_ascii=False
    )  # byte-identical on retry
    assert DuplicateCheck(interval=99999).fields()["duplicate_check_interval"] == 4 * 3600


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: text(""), "empty"),
        (lambda: text("   "), "empty"),
        (lambda: text("字" * 683), "2049 bytes"),
        (lambda: markdown("a" * 2049), "2049 bytes"),
        (lambda: textcard("题" * 43, "d", "https://x"), "129 bytes"),
        (lambda: textcard("t", "d" * 513, "https://x"), "513 bytes"),
        (lambda: textcard("t", "d", ""), "url is empty"),
        (lambda: news([]), "1 to 8"),
        (lambda: Recipients.of(), "no recipients"),
    ],
)
def test_invalid_content_is_refused_before_any_call(build, message):
    with pytest.raises(MessageError, match=message):
        build()


def test_limits_are_bytes_not_characters():
    assert text("字" * 682)["text"]["content"]  # 2,046 bytes: fits
    assert byte_len("😀") == 4


def test_long_markdown_splits_at_lines_into_numbered_parts_that_fit():
    lines = [f"- {i:03d} 面试 候选人 王五 😀 后端工程师 10:00-11:00" for i in range(200)]
    content = "\n".join(lines)
    parts = split_markdown(content)
    assert len(parts) > 1
    assert all(byte_len(part) <= 2048 for part in parts)
    assert parts[0].startswith(f"(1/{len(parts)})\n") and parts[-1].startswith(
        f"({len(parts)}/{len(parts)})\n"
    )
    rebuilt = [line for part in parts for line in part.split("\n")[1:]]
    assert rebuilt == lines  # every line whole, in order


def test_a_line_longer_than_a_part_is_cut_between_characters():
    content = "😀字a" * 1000  # one line, mixed widths: 8,000 bytes
    parts = split_markdown(content)
    assert all(byte_len(part) <= 2048 for part in parts)
    body = "".join(part.split("\n", 1)[1] for part in parts)
    assert body == content  # nothing lost, no character broken (each part decodes on its own)


def test_short_markdown_is_one_part_without_numbering():
    assert split_markdown("hello") == ["hello"]


def test_recipients_are_chunked_to_wecom_limits():
    users = [f"u{i}" for i in range(2500)]
    chunks = Recipients.of(users=users, parties=list(range(1, 151)), tags="t1|t2").chunks()
    assert len(chunks) == 3
    assert [len(c["touser"].split("|")) for c in chunks] == [1000, 1000, 500]
    assert [len(c.get("toparty", "").split("|")) for c in chunks[:2]] == [100, 50]
    assert chunks[0]["totag"] == "t1|t2" and "totag" not in chunks[1]
    assert Recipients.of(users="a, b|a").users == ("a", "b")
