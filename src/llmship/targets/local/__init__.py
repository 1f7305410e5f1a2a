"""Local deployment: `llmship serve` in the background, recorded like any target."""
