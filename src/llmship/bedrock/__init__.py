"""Amazon Bedrock: fine-tune (customization jobs), host (on-demand deployment or
provisioned throughput), import llmship's own model (Custom Model Import) and invoke,
through the same config and commands as the other targets.

    export.py     the dataset as bedrock-conversation-2024 JSONL, checked against limits
    facts.py      the one table of Bedrock facts (data/bedrock.json), with sources
    role.py       the service role Bedrock assumes (trust and S3 access, least privilege)
    customize.py  `llmship train --target bedrock`
    metrics.py    a job's metrics CSVs as a run's metrics.jsonl
    hosted.py     what every Bedrock-hosted deployment shares: status, invoke, destroy
                  (the deploy targets `bedrock` and `bedrock-import` build on it)
    invoke.py     Converse, ConverseStream and InvokeModel
"""
