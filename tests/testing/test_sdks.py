"""The official SDKs accept the simulator's answers (proof that the fakes are SDK-faithful)."""

from __future__ import annotations

import anthropic
import openai
import trio
from anthropic.types import MessageParam

from tests.testing.sim_helpers import Sim
from trio_pool.testing.faults import SimConfig


async def test_openai_sdk_streams_a_codex_turn(sim: Sim) -> None:
    """openai.responses.create(stream=True) against the Codex fake yields the text and completes."""
    account = sim.account("codex")

    def run() -> list[object]:
        with openai.OpenAI(
            base_url=f"{sim.base}/backend-api/codex",
            api_key=account.access_token,
            default_headers={"ChatGPT-Account-ID": account.account_id},
            max_retries=0,
        ) as client:
            return list(
                client.responses.create(
                    model="gpt-5", instructions="Be brief.", input="hi", store=False, stream=True
                )
            )

    with trio.fail_after(20):
        events = await trio.to_thread.run_sync(run)
    types = [getattr(e, "type", None) for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    text = "".join(
        getattr(e, "delta", "")
        for e in events
        if getattr(e, "type", "") == "response.output_text.delta"
    )
    assert text == SimConfig().text
    completed = events[-1]
    assert completed.response.output_text == SimConfig().text  # type: ignore[attr-defined]
    assert completed.response.usage.output_tokens > 0  # type: ignore[attr-defined]


async def test_anthropic_sdk_streams_and_answers_whole_messages(sim: Sim) -> None:
    """anthropic messages.create works streaming and non-streaming with an OAuth bearer token."""
    account = sim.account("claude")

    def run() -> tuple[str, list[str], str]:
        with anthropic.Anthropic(
            base_url=sim.base,
            auth_token=account.access_token,
            default_headers={"anthropic-beta": "oauth-2025-04-20"},
            max_retries=0,
        ) as client:
            messages: list[MessageParam] = [{"role": "user", "content": "hi"}]
            whole = client.messages.create(
                model="claude-opus-5-5", max_tokens=64, messages=messages
            )
            stream = client.messages.create(
                model="claude-opus-5-5", max_tokens=64, messages=messages, stream=True
            )
            kinds: list[str] = [event.type for event in stream]
            with client.messages.stream(
                model="claude-opus-5-5", max_tokens=64, messages=messages
            ) as helper:
                final = helper.get_final_message()
            return whole.content[0].text, kinds, final.content[0].text  # type: ignore[union-attr]

    with trio.fail_after(20):
        text, kinds, streamed = await trio.to_thread.run_sync(run)
    assert text == streamed == SimConfig().text
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert sim.account("claude").generations == 3
