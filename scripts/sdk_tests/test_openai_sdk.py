"""The dsv4 server through the official `openai` Python SDK.

Needs a running `dsv4 serve --test-hooks --api-key KEY` (the tiny random model); its address
in DSV4_BASE_URL (e.g. http://127.0.0.1:8000) and the key in DSV4_API_KEY. The tiny model's
text is random, so exact outputs come from the `dsv4_forced_output` test hook: the completion
is forced to that text followed by EOS (byte-level tokenizer: give max_tokens >= 1000).
"""

import json
import os

import openai
import pytest

BASE = os.environ.get("DSV4_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
KEY = os.environ.get("DSV4_API_KEY", "test-key")

TOOL_CALL = (
    "\n\n<｜DSML｜tool_calls>\n"
    '<｜DSML｜invoke name="get_weather">\n'
    '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n'
    '<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>\n'
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>"
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}

HELLO = [{"role": "user", "content": "Hello"}]


def make_client(base=BASE + "/v1", key=KEY):
    # No retries: an error must surface as the first answer's exception.
    return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client():
    return make_client()


def extra(obj, name):
    """A field the SDK's models do not declare (DeepSeek's additions)."""
    v = getattr(obj, name, None)
    if v is None and getattr(obj, "model_extra", None):
        v = obj.model_extra.get(name)
    return v


def has_extra(obj, name):
    return name in (getattr(obj, "model_extra", None) or {}) or getattr(obj, name, None) is not None


# ---------------------------------------------------------------- basic chat


def test_chat_non_stream(client):
    r = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=8, seed=1)
    assert r.object == "chat.completion"
    assert r.id and r.model == "deepseek-chat"
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0
    assert c.message.role == "assistant"
    assert isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_forced_content(client):
    r = client.chat.completions.create(
        model="deepseek-chat", messages=HELLO, max_tokens=1000, extra_body={"dsv4_forced_output": "Hello, world!"}
    )
    assert r.choices[0].message.content == "Hello, world!"
    assert r.choices[0].finish_reason == "stop"


def test_chat_stream(client):
    stream = client.chat.completions.create(
        model="deepseek-chat", messages=HELLO, max_tokens=1000, stream=True,
        extra_body={"dsv4_forced_output": "Streaming works."},
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1, "one id for the whole stream"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Streaming works."
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_chat_stream_random_text_length(client):
    stream = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=5, stream=True, seed=3)
    finishes = [ch.choices[0].finish_reason for ch in stream if ch.choices and ch.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")


# ---------------------------------------------------------------- thinking


def test_thinking_reasoner_gives_reasoning_content(client):
    r = client.chat.completions.create(
        model="deepseek-reasoner", messages=HELLO, max_tokens=1000,
        extra_body={"dsv4_forced_output": "reasoning</think>answer"},
    )
    m = r.choices[0].message
    assert extra(m, "reasoning_content") == "reasoning"
    assert m.content == "answer"
    assert r.usage.completion_tokens_details.reasoning_tokens > 0


def test_thinking_enabled_by_extra_body(client):
    r = client.chat.completions.create(
        model="deepseek-chat", messages=HELLO, max_tokens=1000,
        extra_body={"thinking": {"type": "enabled"}, "dsv4_forced_output": "hmm, let me see</think>Yes."},
    )
    m = r.choices[0].message
    assert extra(m, "reasoning_content") == "hmm, let me see"
    assert m.content == "Yes."


def test_thinking_random_text_has_reasoning_field(client):
    r = client.chat.completions.create(model="deepseek-reasoner", messages=HELLO, max_tokens=6, seed=5)
    assert isinstance(extra(r.choices[0].message, "reasoning_content"), str)


def test_thinking_off_has_no_reasoning(client):
    r = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=6, seed=5)
    assert not has_extra(r.choices[0].message, "reasoning_content")
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    r = client.chat.completions.create(
        model="deepseek-v4-flash", messages=HELLO, max_tokens=6, extra_body={"thinking": {"type": "disabled"}}
    )
    assert not has_extra(r.choices[0].message, "reasoning_content")


def test_thinking_stream_reasoning_then_content(client):
    stream = client.chat.completions.create(
        model="deepseek-reasoner", messages=HELLO, max_tokens=1000, stream=True,
        extra_body={"dsv4_forced_output": "step one, step two</think>Done."},
    )
    order, reasoning, content = [], "", ""
    for ch in stream:
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        rc = extra(d, "reasoning_content")
        if rc:
            reasoning += rc
            order.append("r")
        if d.content:
            content += d.content
            order.append("c")
    assert reasoning == "step one, step two"
    assert content == "Done."
    assert order == sorted(order, key=lambda k: k != "r"), "reasoning deltas come before content deltas"


# ---------------------------------------------------------------- tools


def test_tool_call_round_trip(client):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    r = client.chat.completions.create(
        model="deepseek-chat", messages=messages, tools=[WEATHER_TOOL], max_tokens=1000,
        extra_body={"dsv4_forced_output": TOOL_CALL},
    )
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    calls = c.message.tool_calls
    assert calls and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}
    assert "｜" not in (c.message.content or ""), "no DSML in content"

    # The assistant message goes back as the SDK produced it, then the tool result.
    messages.append(c.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21, "sky": "sunny"})})
    r2 = client.chat.completions.create(
        model="deepseek-chat", messages=messages, tools=[WEATHER_TOOL], max_tokens=1000,
        extra_body={"dsv4_forced_output": "It is sunny in Paris, 21 °C."},
    )
    assert r2.choices[0].message.content == "It is sunny in Paris, 21 °C."
    assert r2.choices[0].finish_reason == "stop"
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens


def test_tool_call_with_thinking_round_trip(client):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(
        model="deepseek-reasoner", messages=messages, tools=[WEATHER_TOOL], max_tokens=1000,
        extra_body={"dsv4_forced_output": "I should call the tool.</think>Let me check." + TOOL_CALL},
    )
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert extra(m, "reasoning_content") == "I should call the tool."
    assert m.content == "Let me check."
    assert m.tool_calls[0].function.name == "get_weather"
    messages.append(m.model_dump(exclude_none=True))  # includes reasoning_content
    messages.append({"role": "tool", "tool_call_id": m.tool_calls[0].id, "content": "sunny"})
    r2 = client.chat.completions.create(model="deepseek-reasoner", messages=messages, tools=[WEATHER_TOOL], max_tokens=8)
    assert r2.choices[0].finish_reason in ("stop", "length")


def test_tool_call_stream_deltas_assemble(client):
    stream = client.chat.completions.create(
        model="deepseek-chat", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
        max_tokens=1000, stream=True, extra_body={"dsv4_forced_output": "Checking." + TOOL_CALL},
    )
    calls, content, finishes = {}, "", []
    for ch in stream:
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.function and tc.function.name:
                slot["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
        if ch.choices[0].finish_reason:
            finishes.append(ch.choices[0].finish_reason)
    assert content == "Checking."
    assert list(calls) == [0]
    assert calls[0]["id"]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "days": 3}
    assert finishes == ["tool_calls"]


# ---------------------------------------------------------------- JSON mode


def test_json_mode_content_parses(client):
    r = client.chat.completions.create(
        model="deepseek-chat",
        messages=[{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Give me a JSON object."}],
        response_format={"type": "json_object"}, max_tokens=300, seed=7,
    )
    content = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop", f"JSON value not finished within 300 tokens: {content!r}"
    json.loads(content)


# ---------------------------------------------------------------- usage, logprobs, n


def test_usage_fields(client):
    r = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=4, seed=2)
    u = r.usage
    hit, miss = extra(u, "prompt_cache_hit_tokens"), extra(u, "prompt_cache_miss_tokens")
    assert isinstance(hit, int) and isinstance(miss, int)
    assert hit + miss == u.prompt_tokens
    assert u.completion_tokens_details is not None
    assert isinstance(u.completion_tokens_details.reasoning_tokens, int)
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_prefix_cache_hits_on_repeat(client):
    # A long shared prompt, asked twice: the second reads (part of) it from the prefix cache.
    msgs = [{"role": "system", "content": "You are a helpful assistant. " * 40}, {"role": "user", "content": "Hi"}]
    client.chat.completions.create(model="deepseek-chat", messages=msgs, max_tokens=2, seed=1)
    r = client.chat.completions.create(model="deepseek-chat", messages=msgs, max_tokens=2, seed=1)
    hit, miss = extra(r.usage, "prompt_cache_hit_tokens"), extra(r.usage, "prompt_cache_miss_tokens")
    assert hit + miss == r.usage.prompt_tokens
    assert hit > 0, f"expected prefix-cache hits on a repeated prompt: {r.usage}"


def test_stream_include_usage_ends_with_usage_chunk(client):
    stream = client.chat.completions.create(
        model="deepseek-chat", messages=HELLO, max_tokens=6, stream=True, seed=4, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens >= 1
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert isinstance(extra(last.usage, "prompt_cache_hit_tokens"), int)
    assert all(ch.usage is None for ch in chunks[:-1])


def test_stream_without_include_usage_has_no_usage(client):
    chunks = list(client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=4, stream=True))
    assert all(ch.usage is None for ch in chunks)
    assert all(ch.choices for ch in chunks)


def test_logprobs_and_top_logprobs(client):
    r = client.chat.completions.create(
        model="deepseek-chat", messages=HELLO, max_tokens=5, logprobs=True, top_logprobs=3, seed=9
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert len(lp.content) == r.usage.completion_tokens
    for t in lp.content:
        assert isinstance(t.token, str)
        assert t.logprob <= 0.0
        assert len(t.top_logprobs) == 3
        assert all(a.logprob <= 0.0 for a in t.top_logprobs)
        lps = [a.logprob for a in t.top_logprobs]
        assert lps == sorted(lps, reverse=True)


def test_logprobs_stream(client):
    chunks = list(client.chat.completions.create(
        model="deepseek-chat", messages=HELLO, max_tokens=5, logprobs=True, top_logprobs=2, stream=True, seed=9,
        stream_options={"include_usage": True},
    ))
    entries = [t for ch in chunks if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.content or []]
    assert len(entries) == chunks[-1].usage.completion_tokens, "one logprob entry per generated token"
    assert all(len(t.top_logprobs) == 2 for t in entries)


def test_n_2(client):
    r = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=5, n=2, seed=11)
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert all(c.message.role == "assistant" for c in r.choices)
    assert 2 <= r.usage.completion_tokens <= 10, "usage counts both choices"


def test_n_2_stream(client):
    stream = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=4, n=2, stream=True)
    finished = sorted(ch.choices[0].index for ch in stream if ch.choices and ch.choices[0].finish_reason)
    assert finished == [0, 1]


# ---------------------------------------------------------------- models


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"deepseek-v4-flash", "deepseek-chat", "deepseek-reasoner"} <= ids


# ---------------------------------------------------------------- errors


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nonexistent", messages=HELLO, max_tokens=4)
    assert e.value.status_code == 404


def test_bad_temperature_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=4, temperature=5.0)
    assert e.value.status_code == 400
    assert isinstance(e.value.body, dict) and e.value.body.get("param") == "temperature"


def test_wrong_key_is_authentication_error():
    bad = make_client(key="wrong-key")
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=4)
    assert e.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_prompt_over_context_is_bad_request(client):
    long = "The quick brown fox jumps over the lazy dog. " * 134  # ~6000 characters
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": long}], max_tokens=16)
    assert e.value.code == "context_length_exceeded"


def test_stream_error_raises_before_streaming(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nonexistent", messages=HELLO, max_tokens=4, stream=True)


# ---------------------------------------------------------------- FIM (beta completions)


@pytest.mark.parametrize("prefix", ["/beta", "/v1"])
def test_fim_completion(prefix):
    c = make_client(base=BASE + prefix)
    r = c.completions.create(model="deepseek-chat", prompt="def f(", suffix="return 1", max_tokens=8)
    assert r.object == "text_completion"
    assert isinstance(r.choices[0].text, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 1 <= r.usage.completion_tokens <= 8


def test_fim_completion_stream():
    c = make_client(base=BASE + "/beta")
    chunks = list(c.completions.create(model="deepseek-chat", prompt="def f(", suffix="return 1", max_tokens=8, stream=True))
    assert chunks
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finishes) == 1
