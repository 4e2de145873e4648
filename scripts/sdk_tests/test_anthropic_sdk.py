"""The dsv4 server's Anthropic-compatible route through the official `anthropic` Python SDK.

Needs a running `dsv4 serve --test-hooks --api-key KEY` (the tiny random model); its address
in DSV4_BASE_URL and the key in DSV4_API_KEY. The client's base URL is BASE/anthropic, so the
SDK posts to BASE/anthropic/v1/messages. Exact outputs come from the `dsv4_forced_output` test
hook (the completion is forced to that text followed by EOS; byte-level tokenizer: give
max_tokens >= 1000).
"""

import os

import anthropic
import pytest

BASE = os.environ.get("DSV4_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
KEY = os.environ.get("DSV4_API_KEY", "test-key")

TOOL_CALL = (
    "\n\n<｜DSML｜tool_calls>\n"
    '<｜DSML｜invoke name="get_weather">\n'
    '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n'
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>"
)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

HELLO = [{"role": "user", "content": "Hello"}]


def make_client(key=KEY):
    return anthropic.Anthropic(base_url=BASE + "/anthropic", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client():
    return make_client()


def forced(text):
    return {"dsv4_forced_output": text}


# ---------------------------------------------------------------- non-stream


def test_create_non_stream_shapes(client):
    r = client.messages.create(model="deepseek-chat", max_tokens=1000, messages=HELLO, extra_body=forced("Hello there!"))
    assert r.type == "message"
    assert r.role == "assistant"
    assert r.id
    assert r.model == "deepseek-chat"
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == "Hello there!"
    assert r.stop_reason == "end_turn"
    assert r.stop_sequence is None
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0


def test_create_random_text_max_tokens(client):
    r = client.messages.create(
        model="deepseek-chat", max_tokens=6, system="You are terse.", messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    )
    assert r.stop_reason in ("max_tokens", "end_turn")
    assert 1 <= r.usage.output_tokens <= 6
    assert all(b.type == "text" for b in r.content)


def test_usage_counts_the_prompt(client):
    r1 = client.messages.create(model="deepseek-chat", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    r2 = client.messages.create(model="deepseek-chat", max_tokens=2, messages=[{"role": "user", "content": "Hi " * 50}])
    total = lambda u: u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    assert total(r2.usage) > total(r1.usage)


def test_stop_sequence(client):
    r = client.messages.create(
        model="deepseek-chat", max_tokens=1000, messages=HELLO, stop_sequences=["STOP"],
        extra_body=forced("one two STOP three"),
    )
    assert r.stop_reason == "stop_sequence"
    assert r.stop_sequence == "STOP"
    assert r.content[0].text == "one two "


# ---------------------------------------------------------------- stream


def test_stream_text_events_and_final_message(client):
    with client.messages.stream(model="deepseek-chat", max_tokens=1000, messages=HELLO, extra_body=forced("Streaming text, piece by piece.")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "Streaming text, piece by piece."
    assert len(pieces) > 1, "text arrives in several deltas"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Streaming text, piece by piece."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_stream_raw_event_order(client):
    with client.messages.stream(model="deepseek-chat", max_tokens=1000, messages=HELLO, extra_body=forced("abc")) as stream:
        types = [e.type for e in stream]
    raw = [t for t in types if t in ("message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop")]
    assert raw[0] == "message_start"
    assert raw[-2:] == ["message_delta", "message_stop"]
    assert raw.index("content_block_start") < raw.index("content_block_delta") < raw.index("content_block_stop")


def test_stream_random_text(client):
    with client.messages.stream(model="deepseek-chat", max_tokens=8, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.stop_reason in ("max_tokens", "end_turn")
    assert 1 <= final.usage.output_tokens <= 8


# ---------------------------------------------------------------- thinking


def test_thinking_blocks(client):
    r = client.messages.create(
        model="deepseek-chat", max_tokens=2000, messages=HELLO, thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=forced("Let me think about it.</think>Hello!"),
    )
    assert [b.type for b in r.content] == ["thinking", "text"]
    assert r.content[0].thinking == "Let me think about it."
    assert isinstance(r.content[0].signature, str)
    assert r.content[1].text == "Hello!"
    assert r.stop_reason == "end_turn"


def test_thinking_stream(client):
    with client.messages.stream(
        model="deepseek-chat", max_tokens=2000, messages=HELLO, thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=forced("Thinking hard.</think>Answer."),
    ) as stream:
        thinking = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert thinking == "Thinking hard."
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Thinking hard."
    assert final.content[1].text == "Answer."


def test_thinking_disabled_has_no_thinking_block(client):
    r = client.messages.create(
        model="deepseek-reasoner", max_tokens=1000, messages=HELLO, thinking={"type": "disabled"}, extra_body=forced("Plain.")
    )
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == "Plain."


def test_thinking_round_trip(client):
    r = client.messages.create(
        model="deepseek-chat", max_tokens=2000, messages=HELLO, thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=forced("Hmm.</think>Hi!"),
    )
    msgs = HELLO + [{"role": "assistant", "content": r.content}, {"role": "user", "content": "And again?"}]
    r2 = client.messages.create(model="deepseek-chat", max_tokens=4, messages=msgs, thinking={"type": "enabled", "budget_tokens": 1024})
    assert r2.stop_reason in ("max_tokens", "end_turn")


# ---------------------------------------------------------------- tools


def test_tool_use_and_tool_result(client):
    msgs = [{"role": "user", "content": "What's the weather in Paris?"}]
    r = client.messages.create(model="deepseek-chat", max_tokens=1000, tools=[WEATHER_TOOL], messages=msgs, extra_body=forced("Let me check." + TOOL_CALL))
    assert r.stop_reason == "tool_use"
    assert [b.type for b in r.content] == ["text", "tool_use"]
    assert r.content[0].text == "Let me check."
    use = r.content[1]
    assert use.name == "get_weather"
    assert use.input == {"city": "Paris"}
    assert use.id

    msgs += [
        {"role": "assistant", "content": r.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "15 degrees, sunny"}]},
    ]
    r2 = client.messages.create(model="deepseek-chat", max_tokens=1000, tools=[WEATHER_TOOL], messages=msgs, extra_body=forced("It is sunny."))
    assert r2.stop_reason == "end_turn"
    assert r2.content[0].text == "It is sunny."
    assert r2.usage.input_tokens + (r2.usage.cache_read_input_tokens or 0) > r.usage.input_tokens


def test_tool_use_stream(client):
    with client.messages.stream(
        model="deepseek-chat", max_tokens=1000, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "Weather in Paris?"}],
        extra_body=forced(TOOL_CALL),
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == {"city": "Paris"}


def test_tool_result_error_and_list_content(client):
    msgs = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": [{"type": "text", "text": "timeout"}]}]},
    ]
    r = client.messages.create(model="deepseek-chat", max_tokens=4, tools=[WEATHER_TOOL], messages=msgs)
    assert r.stop_reason in ("max_tokens", "end_turn", "tool_use")


# ---------------------------------------------------------------- errors


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-nonexistent", max_tokens=4, messages=HELLO)
    assert e.value.status_code == 404
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"


def test_bad_temperature_is_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        # Recent SDKs no longer declare `temperature`; the Messages API still takes it (0-1).
        client.messages.create(model="deepseek-chat", max_tokens=4, messages=HELLO, extra_body={"temperature": 2.0})
    assert e.value.status_code == 400
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_empty_messages_is_bad_request(client):
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="deepseek-chat", max_tokens=4, messages=[])


def test_prompt_over_context_is_bad_request(client):
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="deepseek-chat", max_tokens=16, messages=[{"role": "user", "content": "word " * 1200}])


def test_wrong_key_is_authentication_error():
    with pytest.raises(anthropic.AuthenticationError) as e:
        make_client(key="wrong-key").messages.create(model="deepseek-chat", max_tokens=4, messages=HELLO)
    assert e.value.status_code == 401
    assert e.value.body["error"]["type"] == "authentication_error"


def test_stream_error_raises(client):
    with pytest.raises(anthropic.NotFoundError):
        with client.messages.stream(model="claude-nonexistent", max_tokens=4, messages=HELLO) as stream:
            stream.get_final_message()
