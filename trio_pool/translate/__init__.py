"""Cross-format translation between the clients' and the providers' APIs (translation.md).

Sans-IO and deterministic: requests are dict -> dict functions, streams are state machines
fed parsed SSE events (``feed(event) -> events``, ``finish() -> events``). The same input
gives the same bytes (no clock, no random ids, insertion-ordered keys), because the
upstream prompt cache keys on the exact request bytes. Nothing here imports trio, h11,
sockets or sqlite3; ``tests/translate/test_purity.py`` checks it.

Entry points for the proxy (each module's docstring says more):
- routing.decide(client_format, model, config.translate, providers) -> Target | Refusal
- requests: messages_to_responses, responses_to_messages, chat_request.chat_to_codex /
  chat_to_claude; signatures.strip_foreign_thinking for native Claude requests
- streams: ResponsesToMessages, MessagesToResponses, chat_stream.ResponsesToChat /
  MessagesToChat; input events from sse.decode, output bytes from sse.encode;
  aggregate.MessageAssembler / ChatAssembler for non-streaming clients
- errors: codex_to_messages_error & co, is_handshake_event, is_retryable_failure
- local_answers: count_tokens_reply, quota probe, model lists
"""
