"""Bedrock Custom Model Import of llmship's own merged model, invoked on demand."""
