"""The streamer that splits a generating batch into per-request text, on hand-worked token streams."""

import torch

from pvlora.serving.streaming import RowStreamer

# byte-level pieces, as a byte-level BPE decodes them: 4 and 5 are the two bytes of "é"
VOCAB = {1: b" Hello", 2: b" ", 3: b"w", 4: b"\xc3", 5: b"\xa9", 6: b"!", 7: b"x"}
EOS = 0


class ByteTokenizer:
    eos_token_id = EOS

    def decode(self, ids, skip_special_tokens=True):
        return b"".join(VOCAB[i] for i in ids if i != EOS).decode("utf-8", errors="replace")


def test_pieces_hold_back_outer_whitespace_and_half_characters_and_add_up_to_the_reply():
    got = {0: [], 2: []}
    streamer = RowStreamer(ByteTokenizer(), [got[0].append, None, got[2].append])
    steps = [(1, 1, 2), (2, 3, 1), (3, 4, 2), (4, EOS, 7), (5, 7, 7), (6, 7, 7), (EOS, 7, 7), (7, 7, 2)]
    streamer.put(torch.zeros(3, 4, dtype=torch.long))  # the prompt: never streamed
    for step in steps:
        streamer.put(torch.tensor(step))
    streamer.end()
    # row 0: "Hello" | " " held | " w" | half of "é" held | "é" | "!" | EOS: nothing after it is read
    assert got[0] == ["Hello", " w", "é", "!"]
    assert "".join(got[0]) == ByteTokenizer().decode([1, 2, 3, 4, 5, 6]).strip() == "Hello wé!"
    # row 2: no EOS; its last token is a space, held back and, at the end, stripped like the reply's
    assert got[2] == ["Hello", " x", "x", "x", "x"]
    assert "".join(got[2]) == ByteTokenizer().decode([2, 1, 2, 7, 7, 7, 7, 2]).strip() == "Hello xxxx"


def test_a_sink_that_fails_stops_only_its_own_row():
    got, calls = [], []

    def gone(piece):  # a client whose connection closed: its event loop refuses new work
        calls.append(piece)
        raise RuntimeError("Event loop is closed")

    streamer = RowStreamer(ByteTokenizer(), [gone, got.append])
    streamer.put(torch.zeros(2, 1, dtype=torch.long))
    for step in [(1, 1), (7, 2), (7, 7), (EOS, 6)]:
        streamer.put(torch.tensor(step))
    streamer.end()
    assert calls == ["Hello"]  # tried once, then left alone
    assert got == ["Hello", " x", "!"]


def _events(submit, include_usage=False) -> list:
    import asyncio
    import json

    from pvlora.serving.batcher import Job
    from pvlora.serving.streaming import chat_chunks

    async def collect():
        job = Job("prompt", {"helpful": 1.0}, 8, 0.0, 1.0, None)
        return [e async for e in chat_chunks(submit, job, {"id": "c1", "model": "m"}, include_usage)]

    out = asyncio.run(collect())
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in out)
    return [e[6:-2] if e == "data: [DONE]\n\n" else json.loads(e[6:]) for e in out]


def test_chat_chunks_relay_pieces_from_the_worker_thread_in_order_then_finish():
    import threading

    from pvlora.serving.batcher import Completion

    def submit(job):  # as the batcher does: pieces from its own thread, then the result
        def work():
            for piece in ["Hel", "lo", " there"]:
                job.stream(piece)
            job.future.set_result(Completion(text="Hello there", prompt_tokens=3, completion_tokens=8,
                                             finish_reason="length"))

        threading.Thread(target=work).start()
        return job.future

    events = _events(submit, include_usage=True)
    assert [e["choices"][0]["delta"] for e in events[:4]] == [
        {"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {"content": " there"}]
    assert events[4]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert events[5]["choices"] == [] and events[5]["usage"] == {"prompt_tokens": 3, "completion_tokens": 8,
                                                                 "total_tokens": 11}
    assert events[6] == "[DONE]" and len(events) == 7
    assert all(e["id"] == "c1" and e["object"] == "chat.completion.chunk" for e in events[:6])


def test_a_failed_generation_ends_the_stream_with_an_error_event():
    def submit(job):
        job.future.set_exception(RuntimeError("out of memory"))
        return job.future

    events = _events(submit)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[1] == {"error": {"message": "out of memory", "type": "server_error", "param": None, "code": None}}
    assert events[2] == "[DONE]" and len(events) == 3
