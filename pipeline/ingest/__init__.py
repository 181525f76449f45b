"""Importing trajectories trajforge did not sample (`trajforge import`): one module per input format, each
turning a record into an OpenAI-shaped conversation (pipeline/ingest/build.py makes the row), or, for
trajforge's own rows, taking the row as it is. The registry maps the names `import.format` uses."""

from pipeline.ingest import atif_format, openai_chat, sharegpt

CONVERSATIONS = {"openai": openai_chat.conversation, "sharegpt": sharegpt.conversation, "atif": atif_format.conversation}
FORMATS = (*CONVERSATIONS, "trajforge")
