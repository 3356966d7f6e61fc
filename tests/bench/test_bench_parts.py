"""The comparison's pure parts: wrk's script and result, ccr's config, the profile summary."""

from __future__ import annotations

from pathlib import Path

from bench import ccr, hotspots, wrk

RESULT = (
    'WRK_RESULT {"requests":1000,"duration_us":2000000,"bytes":5,"connect":0,"read":0,'
    '"write":0,"status":10,"timeout":0,"p50_us":1500,"p99_us":9000}'
)


def test_wrk_script_carries_body_and_headers_verbatim(tmp_path: Path) -> None:
    """A body holding Lua's closing bracket still reaches wrk unchanged, with its headers."""
    body = b'{"text":"a]]b]=]c"}'
    text = wrk.script(tmp_path / "s.lua", body, [("x-api-key", "k]]")]).read_text()
    assert 'wrk.body = [==[{"text":"a]]b]=]c"}]==]' in text
    assert "wrk.headers[ [[x-api-key]] ] = [=[k]]]=]" in text
    assert "done = function" in text


def test_wrk_result_counts_non_2xx_answers_as_failures() -> None:
    """wrk's own output lines are ignored; a non-2xx answer is an error, not a success."""
    result = wrk.parse(f"Running 2s test\n{RESULT}\nRequests/sec: 500\n", cpu_s=0.25)
    assert result.ok == 990
    assert result.errors == {"status": 10}
    assert result.rate == 495
    assert result.p99_ms == 9.0


def test_ccr_is_configured_as_one_anthropic_pass_through() -> None:
    """Only the Anthropic transformer (ccr's bypass), logging off, the fake upstream as base."""
    config = ccr.config(3456, 9999)
    (provider,) = config["Providers"]
    assert provider["transformer"] == {"use": ["Anthropic"]}
    assert provider["api_base_url"] == "http://127.0.0.1:9999/v1/messages"
    assert config["Router"]["default"] == f"{provider['name']},{provider['models'][0]}"
    assert config["LOG"] is False
    assert config["HOST"] == "127.0.0.1"


def test_profile_summary_attributes_samples_to_leaf_frames() -> None:
    """Own time goes to the leaf frame, areas come from the leaf's package, idle waits drop."""
    raw = "\n".join(
        [
            "run (trio/_core/_run.py:1);feed (/x/trio_pool/providers/sse.py:9) 30",
            "run (trio/_core/_run.py:1);send (h11/_connection.py:5) 10",
            "run (trio/_core/_run.py:1) 60",
            "_bootstrap (threading.py:1);WorkerThread._work (trio/_core/_thread_cache.py:211) 40",
        ]
    )
    lines = hotspots.summarize(raw, top=3)
    assert lines[0] == "100 busy samples (40 of idle thread-cache workers left out)"
    assert "   60.0%  trio" in lines
    assert "   30.0%  trio_pool/providers" in lines
    assert "   30.0%  feed (trio_pool/providers/sse.py)" in lines
