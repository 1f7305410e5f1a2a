"""Payloads on the wire, parsed and written once, without torch or boto3: the server, the
gateway (inside its Lambda zip) and `invoke` share them.

    toolkit.py      Hugging Face inference toolkit requests, answers and token streams
    eventstream.py  AWS event-stream framing (InvokeEndpointWithResponseStream)
    openai.py       OpenAI chat/completions requests and answers
    tools.py        OpenAI tool calling over a chat template: families, checks, parsers
"""
