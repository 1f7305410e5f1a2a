"""An API exposed with `llmship expose ROUTE --target aws`, seen by status and destroy."""
